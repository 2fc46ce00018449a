"""`python -m composed_ft.code <command> ...`: the code experiments' command line.

To add a command, add one entry to COMMANDS: name -> (module, help). The module must define
`add_args(parser)` and `run(args)` (or `add_args_<name>` / `run_<name>` with dashes as
underscores when one module holds several commands). Modules are imported only when their command
runs, so heavy imports (torch) do not slow the other commands down.
"""
import argparse
import importlib
import logging

from composed_ft.core.errors import cli_entry

COMMANDS = {
    "make-sanstype": ("composed_ft.code.cli_data", "generate the SansType data set (seeded, deterministic)"),
    "gold-ceiling": ("composed_ft.code.cli_data", "run gold programs through the evaluator (SPoC or SansType)"),
    "make-spoc": ("composed_ft.code.cli_data", "write SPoC (labeled pairs, test problems, corrupted unlabeled code) "
                  "in the four-file format"),
    "make-denoise-data": ("composed_ft.code.cli_data", "write corrupted->clean pairs for the denoiser"),
    "denoise": ("composed_ft.code.stages", "train the denoiser Π (corrupted -> clean programs)"),
    "direct": ("composed_ft.code.stages", "train f from scratch on the labeled pairs (--reverse: code -> pseudocode)"),
    "pretrain": ("composed_ft.code.stages", "fine-tune f initialized from Π (standard fine-tuning)"),
    "compose": ("composed_ft.code.stages", "composed fine-tuning of f through the frozen Π (REINFORCE)"),
    "backtranslate": ("composed_ft.code.stages", "train f on labeled + backtranslated unlabeled programs"),
    "evaluate": ("composed_ft.code.stages", "re-evaluate a finished predictor run (e.g. with --beam)"),
    "table": ("composed_ft.code.report", "write results/sanstype.md (+ .tsv) from run directories"),
    "errors": ("composed_ft.code.errors", "classify a run's failed outputs by where they first differ from the gold"),
    "compare": ("composed_ft.code.errors", "two runs program by program: gained, lost, exact McNemar p"),
}


def _hooks(name):
    module = importlib.import_module(COMMANDS[name][0])
    suffix = name.replace("-", "_")
    add = getattr(module, f"add_args_{suffix}", None) or getattr(module, "add_args")
    run = getattr(module, f"run_{suffix}", None) or getattr(module, "run")
    return add, run


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m composed_ft.code", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _hooks(name)[0](p)
    return parser


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return _hooks(args.command)[1](args)


if __name__ == "__main__":
    main()
