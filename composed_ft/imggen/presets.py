"""The preset tables of the font experiment: per stage and preset, the defaults a preset fills (a dict
value is per --method); any flag overrides them (the mechanism: composed_ft/core/presets.py).
`python -m composed_ft.imggen presets` prints them."""

# `paper`: PAPER.md's settings; `smoke`: seconds, for tests; `cpu`: the full tables on a 2-core CPU in
# bounded time. Why the cpu values are what they are (U-Net width, denoiser updates, epochs per method) is
# measured in imggen/README.md. Every preset uses the authors' f and losses (the table below).
METHOD_DEFAULTS = dict(dropout={"direct": 0.0, "composed": 0.1}, l2={"direct": 0.0, "composed": 1e-4},
                       l2_scope="nonbias", bn_eps=0.8)
PRESETS = {
    "denoise": {
        "smoke": dict(unet_width=8, max_epoch=1, min_updates=5, batch_size=64, curve_interval=0),
        "cpu": dict(unet_width=16, max_update=4000, max_epoch=2, min_updates=1500, batch_size=256, curve_interval=250),
        # the authors' 2 epochs over ~3.5M images were ~27k updates; ours has 15x fewer images
        "paper": dict(unet_width=64, max_epoch=2, min_updates=27000, batch_size=256, curve_interval=1000),
    },
    "train": {
        "smoke": dict(max_epoch=3, batch_size=64, save_interval=1, log_interval=1, **METHOD_DEFAULTS),
        # budgets from the probes' validation curves by one rule (imggen/README.md, "Budget probes"): Direct in
        # epochs (it overfits per pass over the data), Composed in updates, the same at every labeled size (its
        # progress is per update: 1.5 x the best update of the probes, 21,020 at 2,500 labels); max_update,
        # when set, replaces max_epoch. The cpu ablations run Composed for 6,000 (imggen/runner.sh)
        "cpu": dict(max_epoch={"direct": 300, "composed": 300}, max_update={"direct": 0, "composed": 32000},
                    save_interval=25, log_interval=25, batch_size=256, **METHOD_DEFAULTS),
        "paper": dict(max_epoch=1000, save_interval=50, log_interval=100, batch_size=256, **METHOD_DEFAULTS),
    },
}
