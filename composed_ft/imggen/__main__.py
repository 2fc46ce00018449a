"""python -m composed_ft.imggen {build-fonts,denoise,train,table,presets} [--preset smoke|cpu|paper] ...

A preset only fills defaults (presets.py); every flag given on the command line overrides it."""
import argparse
import sys

from ..core import presets as preset_mechanism
from ..core.errors import cli_entry
from ..core.progress import setup_logging
from .presets import PRESETS

STAGES = ("denoise", "train")


def common_args(p):
    p.add_argument("--preset", choices=preset_mechanism.NAMES, default="cpu",
                   help="fills the flags left unset (default: cpu; `presets` prints the values)")
    p.add_argument("--data", default=None, help="fonts dataset from build-fonts (default: data/fonts/fonts32.npz)")
    p.add_argument("--data-seed", type=int, default=None, help="chooses the labeled fonts and the splits (default: 0)")
    p.add_argument("--seed", type=int, default=None, help="initialization, batch order, noise, dropout (default: 0)")
    p.add_argument("--run-dir", required=True, help="run directory (config, metrics, checkpoints, results)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--precision", choices=["bf16", "tf32", "fp32"], default=None,
                   help="CUDA only (a CPU computes in float32): bf16 autocast of the training step and TF32 matrix "
                        "products, TF32 only, or neither (default: bf16; composed_ft/core/precision.py)")
    p.add_argument("--denormals", choices=["flush", "keep"], default=None,
                   help="CPU only: flush subnormal floats to zero (the default: the L2 penalty drives weights there, "
                        "where a CPU is ~4x slower) or keep them (runs made before 2026-12-03; "
                        "composed_ft/core/precision.py)")
    p.add_argument("--tag", default=None, help="free label used by `table` to group runs (main, ablation-...)")
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate (the preset's)")
    p.add_argument("--beta1", type=float, default=None, help="(the preset's)")
    p.add_argument("--beta2", type=float, default=None, help="(the preset's)")
    p.add_argument("--batch-size", type=int, default=None, help="(the preset's)")
    p.add_argument("--max-epoch", type=int, default=None, help="(the preset's)")
    p.add_argument("--overwrite", action="store_true",
                   help="a run directory holding a run made with other settings: move it aside to "
                        "RUN.replaced-<time> (never deleted) and train these settings (without it: refused, "
                        "naming each setting that differs)")


def add_denoise_args(p):
    common_args(p)
    p.add_argument("--perturb", choices=["blur", "contrast", "emboss"], default=None, help="(default: blur)")
    p.add_argument("--blur-max", type=float, default=None,
                   help="blur radius drawn uniformly in [0, s] (the preset's)")
    p.add_argument("--contrast", type=float, default=None, help="contrast factor (the preset's)")
    p.add_argument("--unet-width", type=int, default=None, help="U-Net base width (the preset's)")
    p.add_argument("--unet-dropout", type=float, default=None,
                   help="dropout in the U-Net (authors' layout: 3 places; the preset's)")
    p.add_argument("--unet-layout", choices=["authors", "preact"], default=None,
                   help="authors: conv -> norm -> activation (PAPER.md); preact: this project's earlier layout "
                        "(the preset's)")
    p.add_argument("--max-update", type=int, default=None,
                   help="train exactly this many updates (overrides --max-epoch and --min-updates; 0: off)")
    p.add_argument("--curve-interval", type=int, default=None,
                   help="log held-out MSE against training seconds every N updates (0: off)")
    p.add_argument("--unlabeled-fonts", type=int, default=None, help="use only this many unlabeled fonts")
    p.add_argument("--min-updates", type=int, default=None,
                   help="train at least this many updates (more epochs when the unlabeled set is small)")


def add_train_args(p):
    common_args(p)
    p.add_argument("--method", choices=["direct", "composed"], required=True)
    p.add_argument("--denoiser", required=True, help="denoiser run directory or checkpoint (frozen)")
    p.add_argument("--n-train", type=int, default=None, help="number of labeled training pairs (the preset's)")
    p.add_argument("--variant", default=None,
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
    if args.command not in STAGES:
        return args
    # every setting's flag defaults to None: unset, it takes the preset's value (per --method where the
    # table has one), then the config's default; resolved once, into a frozen config (config.py)
    from .config import resolve
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "overwrite", "extend")}
    return argparse.Namespace(command=args.command, config=resolve(given, args.command), overwrite=args.overwrite,
                              extend=getattr(args, "extend", False))


def add_presets_args(p):
    p.add_argument("--preset", choices=preset_mechanism.NAMES, default=None, help="one preset (default: all)")
    p.add_argument("--get", metavar="STAGE.[METHOD.]KEY",
                   help="print one value as the stage resolves it (e.g. train.composed.l2, denoise.blur_max, "
                        "ablation.composed_max_update), for a runner")


def resolved_tables(preset):
    """{column: {setting: value}} of one preset: every value each stage uses, as it resolves it (the
    table's, else the config's default), a column per method where the training differs by method."""
    from .config import preset_values
    out = {"denoise": preset_values("denoise", preset)}
    for method in ("direct", "composed"):
        out[f"train {method}"] = preset_values("train", preset, method)
    out["ablation"] = dict(PRESETS["ablation"][preset])
    return out


def run_presets(args):
    if args.get:
        stage, *method, key = args.get.split(".")
        column = f"{stage} {method[0]}" if method else stage
        v = resolved_tables(args.preset or "cpu")[column][key]
        print(v)
        return 0
    names = [args.preset] if args.preset else preset_mechanism.NAMES
    print("# imggen: every value each stage uses at each preset (flags override them)\n")
    print(preset_mechanism.render({p: resolved_tables(p) for p in names}))
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
