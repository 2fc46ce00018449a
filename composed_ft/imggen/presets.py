"""The preset tables of the font experiment: per stage and preset, the default of every hyperparameter a
stage uses (a dict value is per --method); any flag overrides them (the mechanism: composed_ft/core/presets.py,
the resolved object: config.py). `python -m composed_ft.imggen presets` prints them as the stages resolve
them."""

# `paper`: PAPER.md's settings; `smoke`: seconds, for tests; `cpu`: the full tables on a 2-core CPU in
# bounded time. Why the cpu values are what they are (U-Net width, denoiser updates, epochs per method) is
# measured in results/NOTES.md. Every preset uses the authors' optimizer, U-Net, f and losses (the tables below).
ADAM = dict(lr=2e-4, beta1=0.5, beta2=0.999)  # the authors' Adam, every stage
# Π: blur radius ~ U[0, s], contrast factor, the authors' U-Net layout (conv -> norm -> activation) and dropout
DENOISER = dict(ADAM, blur_max=2.0, contrast=0.5, unet_dropout=0.5, unet_layout="authors")
METHOD_DEFAULTS = dict(dropout={"direct": 0.0, "composed": 0.1}, l2={"direct": 0.0, "composed": 1e-4},
                       l2_scope="nonbias", bn_eps=0.8)
PREDICTOR = dict(ADAM, n_train=2500, **METHOD_DEFAULTS)
PRESETS = {
    "denoise": {
        "smoke": dict(DENOISER, unet_width=8, max_update=0, max_epoch=1, min_updates=5, batch_size=64,
                      curve_interval=0),
        "cpu": dict(DENOISER, unet_width=16, max_update=4000, max_epoch=2, min_updates=1500, batch_size=256,
                    curve_interval=250),
        # the authors' 2 epochs over ~3.5M images were ~27k updates; ours has 15x fewer images
        "paper": dict(DENOISER, unet_width=64, max_update=0, max_epoch=2, min_updates=27000, batch_size=256,
                      curve_interval=1000),
    },
    "train": {
        "smoke": dict(PREDICTOR, max_epoch=3, max_update=0, batch_size=64, save_interval=1, log_interval=1),
        # budgets from the probes' validation curves by one rule (results/imggen.md, "Budget probes"): Direct in
        # epochs (it overfits per pass over the data), Composed in updates, the same at every labeled size (its
        # progress is per update: 1.5 x the best update of the probes, 21,020 at 2,500 labels); max_update,
        # when set, replaces max_epoch
        "cpu": dict(PREDICTOR, max_epoch={"direct": 300, "composed": 300}, max_update={"direct": 0, "composed": 32000},
                    save_interval=25, log_interval=25, batch_size=256),
        "paper": dict(PREDICTOR, max_epoch=1000, max_update=0, save_interval=50, log_interval=100, batch_size=256),
    },
    # not a stage: what imggen/runner.sh's ablations train Composed for (0: the main runs' budget). At the cpu
    # preset they are shorter than the main runs' (the 32,000 above would make the ablations ~5x longer);
    # each ablation row is then compared with the main run's snapshot at the same budget (`train --extend`
    # keeps results_<updates>.json)
    "ablation": {
        "smoke": dict(composed_max_update=0),
        "cpu": dict(composed_max_update=6000),
        "paper": dict(composed_max_update=0),
    },
}
