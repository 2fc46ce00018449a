"""The configuration of a stage: its flags, and the frozen object they resolve into.

A stage's settings are resolved once, by `resolve`, from (in this order, the first that has a value
wins) the command line, the preset's table for the stage (presets.py), and the defaults below; then
the architecture of the run it is initialized from (its weights must fit) and the vocabulary. The
result is a frozen dataclass: saved as the run's config.json and in its checkpoints, read by every
later step (`from_saved` reads it back, older runs' configs included), changed by nobody.

No torch here: `--help` of any command stays fast.
"""
import dataclasses
import os
from dataclasses import dataclass
from typing import Optional, Tuple

from composed_ft.code import presets
from composed_ft.core import presets as preset_mechanism
from composed_ft.core.errors import UserError

STAGES = ("denoise", "direct", "pretrain", "compose", "backtranslate")
MAX_POSITIONS = 1024  # learned positions of encoder and decoder when --max-positions is not set
SCHEDULERS = ("inverse_sqrt", "cosine")  # composed_ft.core.schedule.SCHEDULERS (which imports torch)
PRECISIONS = ("bf16", "tf32", "fp32")  # composed_ft.core.precision.PRECISIONS (which imports torch)


@dataclass(frozen=True)
class StageConfig:
    stage: str = ""
    experiment: str = "sanstype"  # whose preset tables: sanstype | spoc
    preset: str = "cpu"
    run_dir: str = ""
    data: str = "data/sanstype"
    vocab: str = ""  # the SentencePiece model's path; resolved: DATA/spm_bpe<vocab_size>.model by default
    vocab_size: int = 600
    vocab_md5: str = ""  # of the vocabulary file: Π, f and their initializations must share it
    vocab_n: int = 0
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"  # on CUDA (core.precision); a CPU computes in float32 whatever it says
    tag: str = ""
    jobs: Optional[int] = None
    # model
    arch: str = "cpu"
    layers: int = 0
    d_model: int = 0
    ffn: int = 0
    heads: int = 0
    dropout: float = 0.1
    attention_dropout: float = 0.2
    activation_dropout: float = 0.2
    embed_init: str = "hf"
    max_positions: int = MAX_POSITIONS
    positions: str = "learned"
    impl: str = "mbart"
    # optimization
    lr: float = 1e-3
    lr_scheduler: str = "inverse_sqrt"
    min_lr_ratio: float = 0.0
    warmup_updates: int = 0
    warmup_init_lr: float = 0.0  # the lr the warmup starts from (fairseq's --warmup-init-lr)
    max_epoch: int = 1
    max_update: int = 0
    checkpoint_select: str = "best"
    max_tokens: int = 4000
    update_freq: int = 1
    adam_betas: Tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-4
    clip_norm: float = 0.0
    label_smoothing: float = 0.0
    ls_switch_epoch: int = 0
    ls_after: float = 0.1
    save_interval: int = 1
    val_decode_interval: int = 0
    log_interval: int = 1
    # data sizes and evaluation
    n_train: int = 0
    n_valid: int = 0
    n_eval: int = 0
    max_len: int = 0
    beam: int = 0
    denoiser: Optional[str] = None
    eval_splits: Tuple[str, ...] = ("test", "ood")

    @property
    def method(self):
        return self.stage

    @property
    def dropouts(self):
        """(dropout, attention, activation): what a model loaded from another run is set to."""
        return self.dropout, self.attention_dropout, self.activation_dropout

    def label_smoothing_at(self, epoch):
        """--label-smoothing, switched to --ls-after from epoch --ls-switch-epoch on (the paper's SPoC
        runs train with 0.2, then continue with 0.1)."""
        if self.ls_switch_epoch and epoch >= self.ls_switch_epoch:
            return self.ls_after
        return self.label_smoothing

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DenoiseConfig(StageConfig):
    noise: str = "structured"
    noise_draw: str = "fixed"
    line_context: int = 1
    delete_p: float = 0.15
    n_unlabeled: int = 0
    init: Optional[str] = None  # the line-wise stage's run the full-program denoiser continues
    init_stage: Optional[str] = None


@dataclass(frozen=True)
class DirectConfig(StageConfig):
    reverse: bool = False

    @property
    def method(self):
        return "reverse" if self.reverse else "direct"


@dataclass(frozen=True)
class PretrainConfig(StageConfig):
    init: Optional[str] = None
    init_stage: Optional[str] = None


@dataclass(frozen=True)
class ComposeConfig(StageConfig):
    init: Optional[str] = None
    init_stage: Optional[str] = None
    lam: float = 1.0
    clamp_min: float = -50.0
    reinforce_scale: float = 10.0
    reinforce_baseline: str = "none"
    sample_len_factor: float = 1.5
    # How log p_f(ŷ|x) of the REINFORCE term is computed (reinforce.py). The paper's equation: over each
    # sample's own tokens (masked), in train mode. What the authors' code ran: summed over every position of
    # the batch padded to its longest sample, PAD after EOS included (padded), in eval mode (no dropout).
    logp_sum: str = "masked"
    logp_mode: str = "train"
    sample_max_len: int = 0  # training samples' fixed length cap (the authors': 200); 0: --sample-len-factor
    # the validation NLL_Π(y | ŷ) that selects the checkpoint: ŷ greedy, or sampled as in training (the
    # authors'; with the same length cap)
    val_yhat: str = "greedy"
    # which preset table fills the defaults: compose, or compose-bt (the authors' Backtranslation +
    # Composed: its own lr, warmup and epochs)
    preset_table: str = "compose"
    # on: the composed objective; off: λ·CE alone through the same loop, schedule, batches and selection
    # ("Pretrained, continued": the control that separates the composition from the extra fine-tuning)
    reinforce: str = "on"


@dataclass(frozen=True)
class BacktranslateConfig(StageConfig):
    reverse_model: Optional[str] = None
    n_unlabeled: int = 0
    bt_sampling: bool = False


CLASSES = {"denoise": DenoiseConfig, "direct": DirectConfig, "pretrain": PretrainConfig, "compose": ComposeConfig,
           "backtranslate": BacktranslateConfig}
# taken from the run a stage is initialized from: its weights must fit
INHERITED = ("arch", "layers", "d_model", "ffn", "heads", "max_positions", "positions", "impl")
_TUPLES = ("adam_betas", "eval_splits")
# the compose options that shape only the REINFORCE term: refused with --reinforce off, where they do nothing
# (the validation's sample cap, --sample-max-len, still applies)
REINFORCE_ONLY = ("clamp_min", "reinforce_scale", "reinforce_baseline", "sample_len_factor", "logp_sum", "logp_mode")


def _defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)}


def table_key(stage, values):
    """Which preset table a stage reads: Direct with --reverse has its own (`reverse`), the line-wise
    denoiser too (`denoise-lines`)."""
    if stage == "direct" and values.get("reverse"):
        return "reverse"
    if stage == "denoise" and values.get("noise") == "given-lines":
        return "denoise-lines"
    if stage == "compose" and values.get("preset_table"):
        return values["preset_table"]
    return stage


def preset_values(stage, given):
    """Flags over the preset's table over the defaults, the architecture's sizes filled: everything
    but what comes from an init run and the vocabulary."""
    cls = CLASSES[stage]
    base = _defaults(cls)
    exp, preset = given.get("experiment") or base["experiment"], given.get("preset") or base["preset"]
    table = presets.table(exp, preset, table_key(stage, {**base, **given}))
    v = preset_mechanism.resolve(given, table, base)
    for k, size in presets.ARCHS[v["arch"]].items():
        if given.get(k) is None:
            v[k] = size
    v.update(stage=stage, experiment=exp, preset=preset)
    for k in _TUPLES:
        v[k] = tuple(v[k])
    return v


def resolve(args, stage, ctx=None):
    """The frozen config of a training stage from its parsed flags. Reads the init run's config (its
    architecture) and builds the vocabulary when missing (rank 0 of a torchrun job, the others wait)."""
    given = preset_mechanism.given_flags(args)
    v = preset_values(stage, given)
    if stage == "compose" and v["reinforce"] == "off":  # checked before the run directory is made
        if v["lam"] != 1.0:
            raise UserError(f"compose --reinforce off trains λ·CE alone, where λ only rescales the lr; "
                            f"--lam {v['lam']:g} is refused (leave it at 1)")
        inert = [k for k in REINFORCE_ONLY if given.get(k) is not None]
        if inert:
            flags = ", ".join("--" + k.replace("_", "-") for k in inert)
            raise UserError(f"compose --reinforce off trains λ·CE alone, so {flags} (options of the REINFORCE "
                            f"term) would be ignored: drop them, or use --reinforce on")
    if stage == "pretrain" and not v["denoiser"]:
        v["denoiser"] = v["init"]  # + Π evaluation with the Π f starts from
    if stage == "compose" and not v["denoiser"]:
        raise UserError("compose: --denoiser (the frozen Π) is required")
    if v.get("init"):
        init = saved_config_of(v["init"])
        v.update({k: getattr(init, k) for k in INHERITED})
        v["init_stage"] = init.init_stage if init.stage == "compose" else init.stage
    v["vocab"], v["vocab_md5"], v["vocab_n"] = _vocabulary(v["data"], v["vocab_size"], v["vocab"], ctx)
    return CLASSES[stage](**v)


def _vocabulary(data, size, path, ctx):
    from composed_ft.code.dataset import require
    from composed_ft.code.tokens import Tokenizer, default_path, ensure_vocab, file_md5
    require(data)
    path = path or default_path(data, size)
    if ctx is None or ctx.is_main:
        ensure_vocab(data, size, path)
    if ctx is not None:
        ctx.barrier()
    return path, file_md5(path), len(Tokenizer(path))


def from_saved(saved):
    """The config of a run from its config.json (or a checkpoint's `config`), runs older than a field
    included: a field they lack, or hold as null, has the value those runs were made with."""
    cls = CLASSES.get(saved.get("stage"), StageConfig)
    v = _defaults(cls)
    v.update({k: saved[k] for k in v if saved.get(k) is not None})
    if "experiment" not in saved and "testw" in (saved.get("eval_splits") or ()):
        v["experiment"] = "spoc"
    for k in _TUPLES:
        v[k] = tuple(v[k])
    return cls(**v)


def saved_config_of(path):
    """The config of the run directory (or checkpoint file) `path`, from its best checkpoint."""
    from composed_ft.core import checkpoint
    ckpt_path = os.path.join(path, "checkpoint_best.pt") if os.path.isdir(path) else path
    return from_saved(checkpoint.load(ckpt_path).get("config") or {})


def comparable(saved):
    """A saved config as today's code reads it (Run.start compares it with a resumed run's)."""
    return from_saved(saved).to_dict()
