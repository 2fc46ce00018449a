"""`python -m composed_ft.code <command> ...`: the code experiments' command line.

To add a command, add one entry to COMMANDS: name -> (flags module, run module, help). The flags
module defines `add_args(parser)` (or `add_args_<name>`, dashes as underscores, when it holds several
commands) and imports nothing heavy at module level, so that `--help` stays fast; the run module
defines `run(args)` (or `run_<name>`) and is imported only when its command runs (the training stages
import torch).
"""
import argparse
import importlib
import logging

from composed_ft.core.errors import cli_entry

_DATA, _FLAGS, _STAGES, _ANALYSIS = ("composed_ft.code.cli_data", "composed_ft.code.flags",
                                      "composed_ft.code.stages", "composed_ft.code.error_analysis")
COMMANDS = {
    "make-sanstype": (_DATA, _DATA, "generate the SansType data set (seeded, deterministic)"),
    "gold-ceiling": (_DATA, _DATA, "run gold programs through the judge (SPoC or SansType)"),
    "make-spoc": (_DATA, _DATA, "write SPoC (labeled pairs, test problems, corrupted unlabeled code) "
                                "in the four-file format"),
    "make-denoise-data": (_DATA, _DATA, "write corrupted->clean pairs for the denoiser"),
    "denoise": (_FLAGS, _STAGES, "train the denoiser Π (corrupted -> clean programs)"),
    "direct": (_FLAGS, _STAGES, "train f from scratch on the labeled pairs (--reverse: code -> pseudocode)"),
    "pretrain": (_FLAGS, _STAGES, "fine-tune f initialized from Π (standard fine-tuning)"),
    "compose": (_FLAGS, _STAGES, "composed fine-tuning of f through the frozen Π (REINFORCE)"),
    "backtranslate": (_FLAGS, _STAGES, "train f on labeled + backtranslated unlabeled programs"),
    "evaluate": (_FLAGS, "composed_ft.code.evaluation", "re-evaluate a finished predictor run (e.g. with --beam)"),
    "presets": (_FLAGS, _FLAGS, "print the preset tables as the stages resolve them"),
    "table": ("composed_ft.code.report", "composed_ft.code.report",
              "write results/sanstype.md (+ .tsv) from run directories"),
    "errors": (_ANALYSIS, _ANALYSIS, "classify a run's failed outputs by where they first differ from the gold"),
    "compare": (_ANALYSIS, _ANALYSIS, "two runs program by program: gained, lost, exact McNemar p"),
}


def _hook(module, kind, name):
    m = importlib.import_module(module)
    return getattr(m, f"{kind}_{name.replace('-', '_')}", None) or getattr(m, kind)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m composed_ft.code", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (flags, _, help_text) in COMMANDS.items():
        _hook(flags, "add_args", name)(sub.add_parser(name, help=help_text, description=help_text))
    return parser


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return _hook(COMMANDS[args.command][1], "run", args.command)(args)


if __name__ == "__main__":
    main()
