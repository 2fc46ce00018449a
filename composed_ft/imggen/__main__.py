"""python -m composed_ft.imggen {build-fonts,denoise,train,table,presets} [--preset smoke|cpu|paper] ...

A preset only fills defaults (presets.py); every flag given on the command line overrides it."""
import argparse
import sys

from ..core import presets as preset_mechanism
from ..core.errors import cli_entry
from ..core.progress import setup_logging
from .presets import PRESETS


def common_args(p):
    p.add_argument("--preset", choices=preset_mechanism.NAMES, default="cpu",
                   help="fills the flags left unset (default: cpu; `presets` prints the values)")
    p.add_argument("--data", default="data/fonts/fonts32.npz", help="fonts dataset from build-fonts")
    p.add_argument("--data-seed", type=int, default=0, help="chooses the labeled fonts and the splits")
    p.add_argument("--seed", type=int, default=0, help="initialization, batch order, noise, dropout")
    p.add_argument("--run-dir", required=True, help="run directory (config, metrics, checkpoints, results)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", choices=["bf16", "tf32", "fp32"], default="bf16",
                   help="CUDA only (a CPU computes in float32): bf16 autocast of the training step and TF32 matrix "
                        "products, TF32 only, or neither (composed_ft/core/precision.py)")
    p.add_argument("--denormals", choices=["flush", "keep"], default="flush",
                   help="CPU only: flush subnormal floats to zero (the L2 penalty drives weights there, where a CPU "
                        "is ~4x slower) or keep them (runs made before 2026-12-03; composed_ft/core/precision.py)")
    p.add_argument("--tag", default="", help="free label used by `table` to group runs (main, ablation-...)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--batch-size", type=int, default=None, help="(the preset's)")
    p.add_argument("--max-epoch", type=int, default=None)


def add_denoise_args(p):
    common_args(p)
    p.add_argument("--perturb", choices=["blur", "contrast", "emboss"], default="blur")
    p.add_argument("--blur-max", type=float, default=2.0, help="blur radius drawn uniformly in [0, s]")
    p.add_argument("--contrast", type=float, default=0.5, help="contrast factor")
    p.add_argument("--unet-width", type=int, default=None, help="U-Net base width (the preset's)")
    p.add_argument("--unet-dropout", type=float, default=0.5, help="dropout in the U-Net (authors' layout: 3 places)")
    p.add_argument("--unet-layout", choices=["authors", "preact"], default="authors",
                   help="authors: conv -> norm -> activation (PAPER.md); preact: this project's earlier layout")
    p.add_argument("--max-update", type=int, default=None,
                   help="train exactly this many updates (overrides --max-epoch and --min-updates)")
    p.add_argument("--curve-interval", type=int, default=None,
                   help="log held-out MSE against training seconds every N updates (0: off)")
    p.add_argument("--unlabeled-fonts", type=int, default=None, help="use only this many unlabeled fonts")
    p.add_argument("--min-updates", type=int, default=None,
                   help="train at least this many updates (more epochs when the unlabeled set is small)")


def add_train_args(p):
    common_args(p)
    p.add_argument("--method", choices=["direct", "composed"], required=True)
    p.add_argument("--denoiser", required=True, help="denoiser run directory or checkpoint (frozen)")
    p.add_argument("--n-train", type=int, default=2500, help="number of labeled training pairs")
    p.add_argument("--variant", default="",
                   help="free label of a setting, kept in the run's config (e.g. authors, strong)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout on the MLP's last two hidden blocks (the preset's, per method)")
    p.add_argument("--l2", type=float, default=None,
                   help="λ of the explicit penalty λ Σ‖W‖² on f (the preset's, per method)")
    p.add_argument("--l2-scope", choices=["nonbias", "weights"], default=None,
                   help="what Σ‖W‖² sums over: nonbias = every parameter but biases, BatchNorm scales included "
                        "(the authors'); weights = only matrices and embeddings (this project's earlier choice)")
    p.add_argument("--bn-eps", type=float, default=None,
                   help="eps of f's BatchNorm layers (the preset's: the authors' BatchNorm1d(n, 0.8); 1e-5: torch's "
                        "default)")
    p.add_argument("--max-update", type=int, default=None,
                   help="stop after this many updates (0: no limit; the paper-size dry run's cap)")
    p.add_argument("--save-interval", type=int, default=None, help="checkpoint every N epochs")
    p.add_argument("--log-interval", type=int, default=None, help="log a line every N epochs")
    p.add_argument("--extend", action="store_true",
                   help="continue this run (finished or not) to a larger --max-epoch/--max-update: it resumes from "
                        "its last checkpoint and ends as a run given the larger budget from the start would "
                        "(constant learning rate); the earlier results are kept as results_<updates>.json")


def add_table_args(p):
    p.add_argument("--runs", default="runs/imggen/cpu", help="root of the run directories to collect")
    p.add_argument("--out", default="results/imggen.md", help="markdown table (TSV written beside it)")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m composed_ft.imggen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from . import build_fonts
    build_fonts.add_args(sub.add_parser("build-fonts", help="render the fonts dataset from font files"))
    add_denoise_args(sub.add_parser("denoise", help="train the U-Net denoiser on perturbed unlabeled glyphs"))
    add_train_args(sub.add_parser("train", help="train a predictor (direct or composed) and evaluate it"))
    add_table_args(sub.add_parser("table", help="write results/imggen.md from run directories"))
    add_presets_args(sub.add_parser("presets", help="print the preset tables (or one value: --get)"))
    args = parser.parse_args(argv)
    if args.command not in PRESETS:
        return args
    # every flag a preset fills defaults to None: unset, it takes the preset's value (per --method where
    # the table has one)
    table = PRESETS[args.command][args.preset]
    values = preset_mechanism.resolve(preset_mechanism.given_flags(args), table, dict.fromkeys(table),
                                      select=getattr(args, "method", None))
    return argparse.Namespace(**{**vars(args), **values, "stage": args.command})


def add_presets_args(p):
    p.add_argument("--preset", choices=preset_mechanism.NAMES, default=None, help="one preset (default: all)")
    p.add_argument("--get", metavar="STAGE.[METHOD.]KEY",
                   help="print one value (e.g. train.composed.l2), for a runner to compare with")


def run_presets(args):
    if args.get:
        stage, *method, key = args.get.split(".")
        v = PRESETS[stage][args.preset or "cpu"][key]
        print(v[method[0]] if isinstance(v, dict) else v)
        return 0
    names = [args.preset] if args.preset else preset_mechanism.NAMES
    print(preset_mechanism.render({p: {stage: PRESETS[stage][p] for stage in PRESETS} for p in names}))
    return 0


@cli_entry
def main(argv=None):
    setup_logging()
    args = parse(argv)
    if args.command == "build-fonts":
        from . import build_fonts
        return build_fonts.run(args)
    if args.command == "table":
        from .report import write_tables
        return write_tables(args.runs, args.out)
    if args.command == "presets":
        return run_presets(args)
    from . import train
    if args.command == "denoise":
        train.denoise(args)
    else:
        train.train_predictor(args)


if __name__ == "__main__":
    sys.exit(main())
