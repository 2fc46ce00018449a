"""`python -m composed_ft.code <command> ...`: the code experiments' command line.

Each command is one row of COMMANDS: its name, the function that adds its flags, the function that
runs it, and its help. The flag functions come from modules that import nothing heavy (flags.py,
cli_data.py, report.py, error_analysis.py), so that `--help` stays fast; the commands that train or
evaluate a model run through the small functions below, which import their stage only when the command
runs (the stages import torch). Go-to-definition on a row leads to the stage it runs.
"""
import argparse
import logging

from composed_ft.code import cli_data, error_analysis, flags, report
from composed_ft.core.errors import cli_entry

# ---------------------------------------------------------------- the stages, imported when they run

def run_denoise(args):
    from composed_ft.code.stages import run_denoise
    return run_denoise(args)


def run_direct(args):
    from composed_ft.code.stages import run_direct
    return run_direct(args)


def run_pretrain(args):
    from composed_ft.code.stages import run_pretrain
    return run_pretrain(args)


def run_compose(args):
    from composed_ft.code.stages import run_compose
    return run_compose(args)


def run_backtranslate(args):
    from composed_ft.code.stages import run_backtranslate
    return run_backtranslate(args)


def run_evaluate(args):
    from composed_ft.code.evaluation import run_evaluate
    return run_evaluate(args)


# ---------------------------------------------------------------- the commands

COMMANDS = {  # name: (add its flags, run it, help)
    "make-sanstype": (cli_data.add_args_make_sanstype, cli_data.run_make_sanstype,
                      "generate the SansType data set (seeded, deterministic)"),
    "gold-ceiling": (cli_data.add_args_gold_ceiling, cli_data.run_gold_ceiling,
                     "run gold programs through the judge (SPoC or SansType)"),
    "make-spoc": (cli_data.add_args_make_spoc, cli_data.run_make_spoc,
                  "write SPoC (labeled pairs, test problems, corrupted unlabeled code) in the four-file format"),
    "make-denoise-data": (cli_data.add_args_make_denoise_data, cli_data.run_make_denoise_data,
                          "write corrupted->clean pairs for the denoiser"),
    "denoise": (flags.add_args_denoise, run_denoise, "train the denoiser Π (corrupted -> clean programs)"),
    "direct": (flags.add_args_direct, run_direct,
               "train f from scratch on the labeled pairs (--reverse: code -> pseudocode)"),
    "pretrain": (flags.add_args_pretrain, run_pretrain, "fine-tune f initialized from Π (standard fine-tuning)"),
    "compose": (flags.add_args_compose, run_compose, "composed fine-tuning of f through the frozen Π (REINFORCE)"),
    "backtranslate": (flags.add_args_backtranslate, run_backtranslate,
                      "train f on labeled + backtranslated unlabeled programs"),
    "evaluate": (flags.add_args_evaluate, run_evaluate, "re-evaluate a finished predictor run (e.g. with --beam)"),
    "presets": (flags.add_args_presets, flags.run_presets, "print the preset tables as the stages resolve them"),
    "table": (report.add_args, report.run, "write results/sanstype.md (+ .tsv) from run directories"),
    "errors": (error_analysis.add_args, error_analysis.run,
               "classify a run's failed outputs by where they first differ from the gold"),
    "compare": (error_analysis.add_args_compare, error_analysis.run_compare,
                "two runs program by program: gained, lost, exact McNemar p"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m composed_ft.code", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_args, _, help_text) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    main()
