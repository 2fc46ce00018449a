"""python -m composed_ft.imggen {build-fonts,denoise,train,table} [--preset smoke|cpu|paper] ...

A preset only fills defaults; every flag given on the command line overrides it."""
import argparse
import sys

from ..core.errors import cli_entry
from ..core.progress import setup_logging

# Defaults per preset and stage; a dict value is per --method. `paper`: PAPER.md's settings;
# `smoke`: seconds, for tests; `cpu`: the full tables on a 2-core CPU in bounded time. Why the cpu
# values are what they are (U-Net width, denoiser updates, epochs per method) is measured in
# imggen/README.md. Every preset uses the authors' f and losses: BatchNorm eps 0.8, Direct with
# dropout 0 and λ 0, Composed with dropout 0.1 and λ 1e-4, the L2 over every non-bias parameter.
METHOD_DEFAULTS = dict(dropout={"direct": 0.0, "composed": 0.1}, l2={"direct": 0.0, "composed": 1e-4},
                       l2_scope="nonbias", bn_eps=0.8)
PRESETS = {
    "denoise": {
        "smoke": dict(unet_width=8, max_epoch=1, min_updates=5, batch_size=64, curve_interval=0),
        "cpu": dict(unet_width=16, max_epoch=2, min_updates=1500, batch_size=256, curve_interval=250),
        # the authors' 2 epochs over ~3.5M images were ~27k updates; ours has 15x fewer images
        "paper": dict(unet_width=64, max_epoch=2, min_updates=27000, batch_size=256, curve_interval=1000),
    },
    "train": {
        "smoke": dict(max_epoch=3, batch_size=64, save_interval=1, log_interval=1, **METHOD_DEFAULTS),
        "cpu": dict(max_epoch={"direct": 100, "composed": 100}, save_interval=25, log_interval=25, batch_size=256,
                    **METHOD_DEFAULTS),
        "paper": dict(max_epoch=1000, save_interval=50, log_interval=100, batch_size=256, **METHOD_DEFAULTS),
    },
}


def common_args(p):
    p.add_argument("--preset", choices=["smoke", "cpu", "paper"], default="cpu",
                   help="fills the defaults below (default: cpu)")
    p.add_argument("--data", default="data/fonts/fonts32.npz", help="fonts dataset from build-fonts")
    p.add_argument("--data-seed", type=int, default=0, help="chooses the labeled fonts and the splits")
    p.add_argument("--seed", type=int, default=0, help="initialization, batch order, noise, dropout")
    p.add_argument("--run-dir", required=True, help="run directory (config, metrics, checkpoints, results)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--tag", default="", help="free label used by `table` to group runs (main, ablation-...)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--batch-size", type=int, default=None, help="(smoke 64, cpu/paper 256)")
    p.add_argument("--max-epoch", type=int, default=None)


def add_denoise_args(p):
    common_args(p)
    p.add_argument("--perturb", choices=["blur", "contrast", "emboss"], default="blur")
    p.add_argument("--blur-max", type=float, default=2.0, help="blur radius drawn uniformly in [0, s]")
    p.add_argument("--contrast", type=float, default=0.5, help="contrast factor")
    p.add_argument("--unet-width", type=int, default=None, help="U-Net base width (paper: 64)")
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
    p.add_argument("--variant", default="", help="free label of a setting, kept in the run's config (e.g. authors, strong)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout on the MLP's last two hidden blocks (preset: direct 0, composed 0.1)")
    p.add_argument("--l2", type=float, default=None,
                   help="λ of the explicit penalty λ Σ‖W‖² on f (preset: direct 0, composed 1e-4)")
    p.add_argument("--l2-scope", choices=["nonbias", "weights"], default=None,
                   help="what Σ‖W‖² sums over: nonbias = every parameter but biases, BatchNorm scales included "
                        "(the authors'); weights = only matrices and embeddings (this project's earlier choice)")
    p.add_argument("--bn-eps", type=float, default=None,
                   help="eps of f's BatchNorm layers (preset: 0.8, the authors' BatchNorm1d(n, 0.8); 1e-5: torch's default)")
    p.add_argument("--save-interval", type=int, default=None, help="checkpoint every N epochs")
    p.add_argument("--log-interval", type=int, default=None, help="log a line every N epochs")


def add_table_args(p):
    p.add_argument("--runs", default="runs/imggen/cpu", help="root of the run directories to collect")
    p.add_argument("--out", default="results/imggen.md", help="markdown table (TSV written beside it)")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m composed_ft.imggen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from . import fonts
    fonts.add_args(sub.add_parser("build-fonts", help="render the fonts dataset from font files"))
    add_denoise_args(sub.add_parser("denoise", help="train the U-Net denoiser on perturbed unlabeled glyphs"))
    add_train_args(sub.add_parser("train", help="train a predictor (direct or composed) and evaluate it"))
    add_table_args(sub.add_parser("table", help="write results/imggen.md from run directories"))
    args = parser.parse_args(argv)
    stage = {"denoise": "denoise", "train": "train"}.get(args.command)
    if stage:
        for k, v in PRESETS[stage][args.preset].items():
            if isinstance(v, dict):  # a per-method default
                v = v[args.method]
            if getattr(args, k, None) is None:
                setattr(args, k, v)
        args.stage = stage
    return args


@cli_entry
def main(argv=None):
    setup_logging()
    args = parse(argv)
    if args.command == "build-fonts":
        from . import fonts
        return fonts.run(args)
    if args.command == "table":
        from .report import write_tables
        return write_tables(args.runs, args.out)
    from . import train
    if args.command == "denoise":
        train.denoise(args)
    else:
        train.train_predictor(args)


if __name__ == "__main__":
    sys.exit(main())
