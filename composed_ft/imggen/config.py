"""The configuration of an imggen stage: the frozen object its flags resolve into, once.

A setting resolves in one order (composed_ft/core/presets.py): a flag given on the command line wins,
else the preset's table for the stage (presets.py: every hyperparameter's default lives there, per
--method where it differs), else the field's default below (which only the settings that select a run
rather than configure it have: data, seeds, device, tag, ...). The result is saved as the run's
config.json and in its checkpoints; `from_saved` reads one back, older runs' included: a setting such a
run lacks (or holds as null) takes the value that run was made with (LEGACY), so an archived run
compares equal to today's resolution of the same command and the report reads it as it was made.

No torch here: `--help` of any command stays fast.
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..core import presets as preset_mechanism
from ..core.errors import UserError
from .presets import PRESETS

STAGES = ("denoise", "train")


@dataclass(frozen=True)
class StageConfig:
    stage: str = ""
    preset: str = "cpu"
    run_dir: str = ""
    data: str = "data/fonts/fonts32.npz"
    data_seed: int = 0  # which fonts are labeled, and the train/val/test split
    seed: int = 0  # initialization, batch order, noise, dropout
    device: str = "auto"
    precision: str = "bf16"  # CUDA only (core/precision.py); a CPU computes in float32
    denormals: str = "flush"  # CPU only: flush subnormal floats to zero, or keep them
    tag: str = ""  # groups runs in `table` (main, ablation-...)
    # the hyperparameters: no default here, every one is in each preset's table (presets.py)
    lr: Optional[float] = None
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    batch_size: Optional[int] = None
    max_epoch: Optional[int] = None
    max_update: Optional[int] = None

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DenoiseConfig(StageConfig):
    perturb: str = "blur"  # which perturbation Π undoes: blur | contrast | emboss
    unlabeled_fonts: Optional[int] = None  # only this many unlabeled fonts (None: all)
    blur_max: Optional[float] = None
    contrast: Optional[float] = None
    unet_width: Optional[int] = None
    unet_dropout: Optional[float] = None
    unet_layout: Optional[str] = None
    min_updates: Optional[int] = None
    curve_interval: Optional[int] = None


@dataclass(frozen=True)
class TrainConfig(StageConfig):
    method: str = ""  # direct | composed
    denoiser: str = ""  # the frozen Π: a denoiser run directory or checkpoint
    variant: str = ""  # a free label of a setting (authors, strong, ...)
    n_train: Optional[int] = None
    dropout: Optional[float] = None
    l2: Optional[float] = None
    l2_scope: Optional[str] = None
    bn_eps: Optional[float] = None
    save_interval: Optional[int] = None
    log_interval: Optional[int] = None


CLASSES = {"denoise": DenoiseConfig, "train": TrainConfig}

# What a run made before a setting existed was made with (the project's earlier f, loss, U-Net and loops):
# from_saved fills a setting a saved config lacks, or holds as null, with these. Not a default of today's.
LEGACY = {
    "bn_eps": 1e-5,  # torch's BatchNorm default, before the authors' 0.8
    "l2_scope": "weights",  # matrices and embeddings only, before the authors' non-bias set
    "variant": "",
    "unet_layout": "preact",  # the pre-activation U-Net, before the authors' conv -> norm -> activation
    "denormals": "keep",  # before --denormals (2026-12-03) a CPU computed with subnormal floats
    "precision": "fp32",  # before --precision: no autocast, no TF32 (a CPU computes in float32 either way)
    "max_update": 0,  # no update budget: the epochs' (null in runs made when a preset had none)
    "min_updates": 0,
    "curve_interval": 0,  # no curve rows
}

# What names or places a run rather than configures it: given by the runner, never in a preset table
SELECTING = ("stage", "preset", "run_dir", "data", "data_seed", "seed", "device", "tag", "method", "denoiser",
             "variant", "perturb", "unlabeled_fonts")


def _defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)}


def table(stage, preset):
    """The preset's table of a stage, with its per-method values ({method: value}) left as they are."""
    return PRESETS[stage][preset]


def resolve(given, stage=None):
    """The frozen config of a stage from the flags given ({flag: value}, None = not given; `stage` and
    `preset` among them or the defaults): flag > the preset's table (per --method) > the field's default.
    A hyperparameter left without a value is a bug in the tables, said here rather than at training."""
    stage = stage or given.get("stage")
    cls = CLASSES[stage]
    preset = given.get("preset") or _defaults(cls)["preset"]
    method = given.get("method")
    v = preset_mechanism.resolve(given, table(stage, preset), _defaults(cls), select=method)
    v.update(stage=stage, preset=preset)
    missing = [k for k, x in v.items() if x is None and k not in ("unlabeled_fonts",)]
    if missing:
        raise UserError(f"imggen {stage} --preset {preset}: no value for {', '.join(missing)} "
                        "(composed_ft/imggen/presets.py)")
    return cls(**v)


def from_saved(saved):
    """The config of a run from its config.json (or a checkpoint's `config`), runs older than a setting
    included: a setting they lack, or hold as null, has the value they were made with (LEGACY); keys
    today's code no longer has (`command`, `extend`) are dropped."""
    cls = CLASSES.get(saved.get("stage"), StageConfig)
    v = {k: saved[k] if saved.get(k) is not None else LEGACY.get(k, saved.get(k)) for k in _defaults(cls)}
    return cls(**v)


def comparable(saved):
    """A saved config as today's code reads it (Run.differences and Run.start compare it with a new one)."""
    return from_saved(saved).to_dict()


def preset_values(stage, preset, method=None):
    """{key: value} every setting of a stage resolves to at a preset (for `presets`): the selecting ones
    left out but for their defaults that change what is computed (precision, denormals, perturb)."""
    given = {"preset": preset, "method": method}
    cfg = resolve(given, stage).to_dict()
    return {k: x for k, x in cfg.items() if k not in SELECTING or k == "perturb"}
