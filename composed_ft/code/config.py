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


def _defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)}


def table_key(stage, values):
    """Which preset table a stage reads: Direct with --reverse has its own (`reverse`), the line-wise
    denoiser too (`denoise-lines`)."""
    if stage == "direct" and values.get("reverse"):
        return "reverse"
    if stage == "denoise" and values.get("noise") == "given-lines":
        return "denoise-lines"
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
    v = preset_values(stage, preset_mechanism.given_flags(args))
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


# ---------------------------------------------------------------- flags

def common_args(p):
    """Flags of every training stage. Every hyperparameter defaults to None: unset, the preset fills it."""
    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=preset_mechanism.NAMES, default=None, help="fills unset defaults (default: cpu)")
    g.add_argument("--experiment", choices=sorted(presets.PRESETS), default=None,
                   help="whose preset tables (default: sanstype; code/runner_spoc.sh: spoc)")
    g.add_argument("--run-dir", required=True, help="run directory (config, metrics, checkpoints, results)")
    g.add_argument("--data", default=None, help="data set in the four-file format (default: data/sanstype)")
    g.add_argument("--vocab", default=None, help="SentencePiece model (default: DATA/spm_bpe<vocab-size>.model, built if missing)")
    g.add_argument("--vocab-size", type=int, default=None)
    g.add_argument("--seed", type=int, default=None, help="initialization, batch order, corruptions, dropout, sampling")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--tag", default=None, help="free label used by `table` to group runs (main, ablation-...)")
    g.add_argument("--jobs", type=int, default=None, help="evaluator threads (default: all cores)")
    g = p.add_argument_group("model (fairseq-style names)")
    g.add_argument("--arch", choices=sorted(presets.ARCHS), default=None, help="named sizes (presets.ARCHS)")
    g.add_argument("--layers", type=int, default=None, help="encoder and decoder layers (arch)")
    g.add_argument("--d-model", type=int, default=None)
    g.add_argument("--ffn", type=int, default=None, help="feed-forward width")
    g.add_argument("--heads", type=int, default=None)
    g.add_argument("--dropout", type=float, default=None)
    g.add_argument("--embed-init", choices=["hf", "fairseq"], default=None,
                   help="hf: tokens and learned positions from N(0, 0.02); fairseq: tokens from N(0, d^-1/2), "
                        "positions from the sinusoidal table")
    g.add_argument("--attention-dropout", type=float, default=None)
    g.add_argument("--activation-dropout", type=float, default=None)
    g.add_argument("--max-positions", type=int, default=None,
                   help=f"learned positions of encoder and decoder, the longest sequence the model holds "
                        f"(default {MAX_POSITIONS}; SPoC's longest gold program has 1,626 BPE tokens at "
                        f"vocabulary 4,000). Stages initialized from another run take its value")
    g.add_argument("--positions", choices=["learned", "sinusoidal"], default=None,
                   help="learned position tables (MBart's, the default) or the fixed sinusoidal table")
    g.add_argument("--impl", choices=["mbart", "torch", "torch-pre"], default=None,
                   help="mbart (Hugging Face's MBart, the default) or the same sizes on torch.nn.Transformer, post- "
                        "(torch) or pre-LayerNorm (torch-pre): a second implementation to compare with "
                        "(model.py; decoded without a cache)")
    g = p.add_argument_group("optimization")
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--lr-scheduler", choices=SCHEDULERS, default=None,
                   help="inverse_sqrt (fairseq's, the paper's; default) or cosine: warmup, then a half cosine "
                        "to --min-lr-ratio x lr at the last update of --max-epoch / --max-update")
    g.add_argument("--min-lr-ratio", type=float, default=None, help="cosine: the final lr as a fraction of --lr (0)")
    g.add_argument("--warmup-updates", type=int, default=None, help="linear warmup of the lr schedule")
    g.add_argument("--max-epoch", type=int, default=None, help="epochs (0: the stage is off and does nothing)")
    g.add_argument("--max-update", type=int, default=None, help="stop after this many updates (0: no limit)")
    g.add_argument("--checkpoint-select", choices=["best", "last"], default=None,
                   help="which epoch's weights a finished stage keeps, evaluates and hands on: best by the stage's "
                        "validation metric (val_nll; Composed val_pi_nll; the paper's rule, the default) or the "
                        "last epoch (validation NLL can rise while greedy accuracy still improves, code/README.md)")
    g.add_argument("--max-tokens", type=int, default=None,
                   help="batch size: examples x max(longest source, longest target) (fairseq's sense)")
    g.add_argument("--update-freq", type=int, default=None, help="gradient accumulation (batches per update)")
    g.add_argument("--adam-betas", type=float, nargs=2, default=None, help="(0.9 0.98)")
    g.add_argument("--weight-decay", type=float, default=None, help="decoupled (AdamW), as fairseq's adam (1e-4)")
    g.add_argument("--clip-norm", type=float, default=None, help="(0: none)")
    g.add_argument("--label-smoothing", type=float, default=None, help="(0)")
    g.add_argument("--ls-switch-epoch", type=int, default=None,
                   help="from this epoch on use --ls-after as label smoothing (0: never switch)")
    g.add_argument("--ls-after", type=float, default=None, help="(0.1)")
    g.add_argument("--save-interval", type=int, default=None, help="checkpoint every N epochs (1)")
    g.add_argument("--val-decode-interval", type=int, default=None, metavar="N",
                   help="every N epochs also decode the validation sources greedily and log val_exact, the share "
                        "of outputs equal to the gold target (the curves stage lengths are chosen from; 0: never)")
    g.add_argument("--log-interval", type=int, default=None, help="log a line every N epochs (1)")
    g = p.add_argument_group("data sizes and evaluation")
    g.add_argument("--n-train", type=int, default=None, help="use only the first N labeled pairs (0: all)")
    g.add_argument("--n-valid", type=int, default=None, help="validate on the first N examples (0: all)")
    g.add_argument("--n-eval", type=int, default=None, help="evaluate on the first N test/OOD examples (0: all)")
    g.add_argument("--max-len", type=int, default=None,
                   help="generation length limit in BPE tokens (0: 1.5 x the longest gold target + 10)")
    g.add_argument("--beam", type=int, default=None, help="evaluate with beam search of this width (0: greedy)")
    g.add_argument("--denoiser", default=None, help="denoiser run directory: + Π evaluation (compose: the frozen Π)")
    g.add_argument("--eval-splits", nargs="*", default=None, help="(test ood)")


def add_args_denoise(p):
    common_args(p)
    p.add_argument("--noise", choices=["structured", "delete", "given", "given-lines"], default=None,
                   help="structured SansType corruptions (the default: the authors' for their format, SANSTYPE.md; "
                        "the strict variant's own otherwise), random token deletion (ablation), the corrupted "
                        "inputs given in unlabeled.src (SPoC's DrRepair-style copies from make-spoc), or "
                        "given-lines: only the changed lines of those copies (± --line-context lines), the "
                        "optional line-wise pre-training stage")
    p.add_argument("--noise-draw", choices=["fixed", "fresh"], default=None,
                   help="structured/delete: fixed -- one corrupted copy per program, drawn once from --seed and "
                        "seen every epoch, like the authors' denoising data; fresh -- new corruptions every epoch "
                        "(default: fixed)")
    p.add_argument("--line-context", type=int, default=None, help="unchanged lines on each side (--noise given-lines; 1)")
    p.add_argument("--init", default=None, help="denoiser run directory whose weights initialize this one "
                                                "(the full-program stage after a given-lines stage)")
    p.add_argument("--delete-p", type=float, default=None, help="token deletion probability (--noise delete; 0.15)")
    p.add_argument("--n-unlabeled", type=int, default=None, help="use only the first N unlabeled programs (0: all)")


def add_args_direct(p):
    common_args(p)
    p.add_argument("--reverse", action="store_true", default=None,
                   help="code -> pseudocode (the backtranslation reverse model)")


def add_args_pretrain(p):
    common_args(p)
    p.add_argument("--init", required=True, help="denoiser run directory whose weights initialize f")


def add_args_compose(p):
    common_args(p)
    p.add_argument("--init", required=True, help="run directory of f's initialization (pretrain, direct or backtranslate)")
    p.add_argument("--lam", type=float, default=None, help="λ, weight of the plain CE term (1)")
    p.add_argument("--clamp-min", type=float, default=None, help="clamp of log p_f(ŷ|x) (-50)")
    p.add_argument("--reinforce-scale", type=float, default=None, help="the REINFORCE term is divided by this (10)")
    p.add_argument("--reinforce-baseline", choices=["none", "greedy", "loo"], default=None,
                   help="none: the paper's weights NLL_Π(y|ŷ); greedy: minus NLL_Π(y|f's greedy output) "
                        "(self-critical); loo: minus the leave-one-out batch mean. Beyond the paper; "
                        "composed_ft/code/reinforce.py. Default: none")
    p.add_argument("--sample-len-factor", type=float, default=None,
                   help="training samples ŷ stop at this factor x the batch's longest gold target + 10 tokens "
                        "(1.5; samples that long are garbage whose log p is far below the clamp; the share that "
                        "reach the limit is logged as train_sample_hit_limit)")


def add_args_backtranslate(p):
    common_args(p)
    p.add_argument("--reverse-model", required=True, help="run directory of the reverse model (direct --reverse)")
    p.add_argument("--n-unlabeled", type=int, default=None, help="label only the first N unlabeled programs (0: all)")
    p.add_argument("--bt-sampling", action="store_true", default=None,
                   help="sample pseudo-sources instead of greedy decoding")


def add_args_evaluate(p):
    p.add_argument("--run-dir", required=True, help="a predictor run directory")
    p.add_argument("--denoiser", default=None, help="denoiser for + Π (default: the run's own)")
    p.add_argument("--beam", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="the selected checkpoint, or the last epoch's (e.g. to judge the selection rule on val)")
    p.add_argument("--out", default=None, help="write results here (default: RUN/eval_beam<k>[_last].json)")
    p.add_argument("--eval-splits", nargs="*", default=["test", "ood"], help="test, ood, val, ...")
    p.add_argument("--n-eval", type=int, default=None, help="first N examples per split (default: the run's)")
    p.add_argument("--max-len", type=int, default=None, help="generation limit (default: the run's)")


# ---------------------------------------------------------------- `presets`: the tables as stages resolve them

def add_args_presets(p):
    p.add_argument("--experiment", choices=sorted(presets.PRESETS), default="sanstype")
    p.add_argument("--preset", choices=preset_mechanism.NAMES, default=None, help="one preset (default: all)")


def run_presets(args):
    keys = [k for k in presets.PRESETS[args.experiment]["cpu"] if k not in ("make-spoc", "gold-ceiling")]
    resolved = {}
    for name in [args.preset] if args.preset else preset_mechanism.NAMES:
        given = {"experiment": args.experiment, "preset": name}
        rows = {}
        for key in keys:
            stage = "direct" if key == "reverse" else key.split("-")[0]
            flags = dict(given, reverse=key == "reverse" or None, noise="given-lines" if key == "denoise-lines" else None)
            v = preset_values(stage, {k: x for k, x in flags.items() if x is not None})
            rows[key] = {k: x for k, x in v.items() if k not in ("stage", "experiment", "preset", "run_dir")}
        resolved[name] = rows
        for key in ("make-spoc", "gold-ceiling"):
            if key in presets.PRESETS[args.experiment][name]:
                rows[key] = presets.PRESETS[args.experiment][name][key]
    print(f"# {args.experiment}: the defaults each stage resolves at each preset (flags override them)\n")
    print(preset_mechanism.render(resolved))
    return 0
