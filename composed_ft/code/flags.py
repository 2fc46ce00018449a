"""The command-line flags of the training stages and of `evaluate`, and the `presets` command.

Every hyperparameter flag defaults to None: unset, it is resolved by config.resolve (the preset's
table, then the config's default). No torch here: `--help` of any command stays fast."""
from composed_ft.code import presets
from composed_ft.code.config import MAX_POSITIONS, PRECISIONS, SCHEDULERS, preset_values
from composed_ft.core import presets as preset_mechanism


def common_args(p):
    """Flags of every training stage. Every hyperparameter defaults to None: unset, the preset fills it."""
    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=preset_mechanism.NAMES, default=None, help="fills unset defaults (default: cpu)")
    g.add_argument("--experiment", choices=sorted(presets.PRESETS), default=None,
                   help="whose preset tables (default: sanstype; code/runner_spoc.sh: spoc)")
    g.add_argument("--run-dir", required=True, help="run directory (config, metrics, checkpoints, results)")
    g.add_argument("--data", default=None, help="data set in the four-file format (default: data/sanstype)")
    g.add_argument("--vocab", default=None,
                   help="SentencePiece model (default: DATA/spm_bpe<vocab-size>.model, built if missing)")
    g.add_argument("--vocab-size", type=int, default=None)
    g.add_argument("--seed", type=int, default=None, help="initialization, batch order, corruptions, dropout, sampling")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="CUDA only (a CPU computes in float32): bf16 -- the training step under bf16 autocast and "
                        "TF32 matrix products (default); tf32 -- TF32 products only; fp32 -- neither "
                        "(composed_ft/core/precision.py)")
    g.add_argument("--tag", default=None, help="free label used by `table` to group runs (main, ablation-...)")
    g.add_argument("--jobs", type=int, default=None, help="evaluator threads (default: all cores)")
    g.add_argument("--overwrite", action="store_true", default=None,
                   help="when RUN_DIR holds a run made with other settings: move it aside to "
                        "RUN_DIR.replaced-<time> and train these settings (without it such a run is refused, "
                        "naming each differing setting)")
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
    g.add_argument("--warmup-init-lr", type=float, default=None,
                   help="the lr the warmup starts from (fairseq's name; 0: from 0)")
    g.add_argument("--max-epoch", type=int, default=None, help="epochs (0: the stage is off and does nothing)")
    g.add_argument("--max-update", type=int, default=None, help="stop after this many updates (0: no limit)")
    g.add_argument("--checkpoint-select", choices=["best", "last"], default=None,
                   help="which epoch's weights a finished stage keeps, evaluates and hands on: best by the stage's "
                        "validation metric (val_nll; Composed val_pi_nll; the paper's rule, the default) or the "
                        "last epoch (validation NLL can rise while greedy accuracy still improves, results/NOTES.md)")
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
    p.add_argument("--line-context", type=int, default=None,
                   help="unchanged lines on each side (--noise given-lines; 1)")
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
    p.add_argument("--init", required=True,
                   help="run directory of f's initialization (pretrain, direct or backtranslate)")
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
    p.add_argument("--sample-max-len", type=int, default=None,
                   help="a fixed length cap of the training samples instead (the authors': fairseq's --max-len-b "
                        "200); 0: --sample-len-factor")
    p.add_argument("--logp-sum", choices=["masked", "padded"], default=None,
                   help="log p_f(ŷ|x) of the REINFORCE term: summed over each sample's own tokens (masked, the "
                        "paper's equation) or over every position of its batch padded to the longest sample, PAD "
                        "after EOS included (padded, what the authors' code computes): a sample shorter than its "
                        "batch's longest then usually falls below --clamp-min, where its term has no gradient")
    p.add_argument("--logp-mode", choices=["train", "eval"], default=None,
                   help="the teacher-forced pass that gives log p_f(ŷ|x): with dropout (train) or without "
                        "(eval, the authors' code); the CE term always trains with dropout")
    p.add_argument("--val-yhat", choices=["greedy", "sample"], default=None,
                   help="ŷ of the validation NLL_Π(y|ŷ) that selects the checkpoint: f's greedy output or a "
                        "sample as in training (the authors')")
    p.add_argument("--preset-table", choices=["compose", "compose-bt"], default=None,
                   help="which table of the preset fills the unset flags: compose, or compose-bt (Backtranslation "
                        "+ Composed as the authors ran it: lr 2e-5, warmup 3,000, 50 epochs at the paper preset)")
    p.add_argument("--reinforce", choices=["on", "off"], default=None,
                   help="off: λ·CE alone, with everything else as Composed (schedule, batches, selection): the "
                        "'Pretrained, continued' control (default: on)")


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
    p.add_argument("--checkpoint", choices=["best", "last", "best_val_nll"], default="best",
                   help="the selected checkpoint, the last epoch's (e.g. to judge the selection rule on val), or "
                        "(compose) the epoch of the best validation CE")
    p.add_argument("--out", default=None, help="write results here (default: RUN/eval_beam<k>[_last].json)")
    p.add_argument("--eval-splits", nargs="*", default=["test", "ood"], help="test, ood, val, ...")
    p.add_argument("--n-eval", type=int, default=None, help="first N examples per split (default: the run's)")
    p.add_argument("--max-len", type=int, default=None, help="generation limit (default: the run's)")
    redo = p.add_mutually_exclusive_group()  # the two ways to write an evaluation into run records
    redo.add_argument("--into-results", action="store_true",
                   help="the run's own evaluation redone on these splits (e.g. after its data set gained larger "
                        "generated test splits): replaces their entries in results.json and their "
                        "eval_<split>.jsonl, recorded under results.json's `re_evaluated`; the run's own "
                        "checkpoint, denoiser, beam, examples and generation limit only")
    redo.add_argument("--as-run", default=None, metavar="DIR",
                   help="the run's model evaluated as the run's own evaluation does, with --denoiser for + Π, "
                        "written as a run directory of its own (with --tag): what retraining the same seed "
                        "with another Π only post hoc would give, without the training (e.g. the noise "
                        "ablation's Direct); skipped when DIR is finished")
    p.add_argument("--tag", default=None, help="with --as-run: the new run's tag (default: the run's)")


# ---------------------------------------------------------------- `presets`: the tables as stages resolve them

# what names a run rather than configures it: never in a preset table
_NOT_PRESET = {"stage", "experiment", "preset", "run_dir", "data", "vocab", "vocab_md5", "vocab_n", "seed", "device",
               "precision", "tag", "jobs", "denoiser", "init", "init_stage", "reverse_model"}


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
            flags = dict(given, reverse=key == "reverse" or None,
                         noise="given-lines" if key == "denoise-lines" else None,
                         preset_table=key if stage == "compose" else None)
            v = preset_values(stage, {k: x for k, x in flags.items() if x is not None})
            rows[key] = {k: x for k, x in v.items() if k not in _NOT_PRESET}
        resolved[name] = rows
        for key in ("make-spoc", "gold-ceiling"):
            if key in presets.PRESETS[args.experiment][name]:
                rows[key] = presets.PRESETS[args.experiment][name][key]
    print(f"# {args.experiment}: the defaults each stage resolves at each preset (flags override them)\n")
    print(preset_mechanism.render(resolved))
    return 0
