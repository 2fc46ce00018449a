"""What every seq2seq stage trains with: the run directory and its resolved config (`prepare`), the
optimizer and schedule, one epoch's token batches, the cross-entropy step and validation, and one
call of the shared training loop (composed_ft.core.trainer.fit). The stages (stages.py) differ only
in their data, their model and, for Composed, their step."""
import logging
from typing import List, NamedTuple, Optional, Tuple

import torch

from composed_ft.code import config
from composed_ft.code.batching import TokenTable, epoch_generator, shard, token_batches
from composed_ft.code.corpus import Corpus
from composed_ft.code.decode import generate, length_limit
from composed_ft.code.losses import batch_nll, validation_nll
from composed_ft.code.tokens import EOS
from composed_ft.core import distributed, schedule
from composed_ft.core.runs import Run
from composed_ft.core.seed import seed_everything
from composed_ft.core.trainer import fit

log = logging.getLogger(__name__)


def prepare(args, stage):
    """(cfg, run, corpus, ctx) of a training stage, or None when there is nothing to do: the run has
    finished with these settings (its results stand) or its --max-epoch is 0 (the stage is off). The
    resolved settings are compared with the run's config.json first: a run made with other settings is
    refused, naming each key, or with --overwrite moved aside and trained afresh (Run.refuse_or_replace).
    ctx is the torchrun context (one process without torchrun); rank 0 builds the vocabulary and writes the
    run directory, the others wait."""
    run = Run(args.run_dir)
    ctx = distributed.setup(args.device)
    cfg = config.resolve(args, stage, ctx)
    run.config = cfg.to_dict()
    if ctx.is_main:
        try:
            run.refuse_or_replace(getattr(args, "overwrite", False), upgrade=config.comparable)
        except Exception:
            ctx.close()
            raise
    ctx.barrier()
    if run.finished:
        log.info("%s: finished already with these settings, nothing to do", run.path)
        ctx.close()
        return None
    if cfg.max_epoch == 0:
        log.info("%s: --max-epoch 0, the stage is off", run.path)
        ctx.close()
        return None
    corpus = Corpus(cfg)
    if ctx.is_main:
        run.start(upgrade=config.comparable)
    ctx.barrier()
    seed_everything(cfg.seed)
    return cfg, run, corpus, ctx


def rank0_only(ctx):
    """After training, only rank 0 evaluates and writes results; True for the others (closed)."""
    if ctx.is_main:
        return False
    ctx.close()
    return True


def generation_limit(cfg, golds):
    """--max-len, or 1.5 x the longest gold target + 10 (decode.length_limit) within the positions."""
    return cfg.max_len or length_limit(max(len(t) for t in golds), cfg.max_positions - 2)


class Batch(NamedTuple):
    """One step's examples: the epoch travels with them to the loss (label smoothing can switch); `rows`
    holds idx on the model's device (copied once per epoch for every batch, not once per step); `parts`
    the token batches whose losses the step sums, each normalized by its own target tokens (fairseq's
    normalization per batch): (idx,) for one batch, or the update_freq batches of an update when
    `merged`."""
    epoch: int
    idx: List[int]
    rows: Optional[torch.Tensor] = None
    parts: Tuple[List[int], ...] = ()
    merged: bool = False


def merge_updates(device):
    """On a GPU an update's update_freq batches run as one step: the same examples, losses and gradient
    (each batch's loss over its own tokens, divided by update_freq, as the accumulation does), from one
    forward and backward instead of update_freq. Its launches, not its arithmetic, bound a step of the
    paper's 4,000-token batches there; a CPU keeps one step per batch, as its runs were made."""
    return device.type == "cuda"


def step_update_freq(cfg, device):
    """The update_freq the training loop accumulates over: 1 when the steps are whole updates."""
    return 1 if merge_updates(device) else cfg.update_freq


def eval_tokens(cfg, device):
    """Tokens per batch of a validation pass: --max-tokens, x16 on a GPU (a few big forward passes cost
    less than many small ones; the NLL is the same sum)."""
    return cfg.max_tokens * (16 if device.type == "cuda" else 1)


def epoch_batches(sources, tgt_lens, cfg, ctx):
    """batches(epoch) for the training loop: token batches of that epoch's sources, shuffled (the same
    order on every torchrun process), this process's slice of each; on a GPU one step per update
    (merge_updates)."""
    def batches(epoch):
        src_lens = [len(s) for s in sources(epoch)]
        idx = shard(token_batches(src_lens, tgt_lens, cfg.max_tokens, shuffle=True,
                                  generator=epoch_generator(cfg.seed, ctx, epoch)), ctx)
        flat = torch.tensor([i for b in idx for i in b], dtype=torch.long).to(ctx.device)
        out, k = [], 0
        if merge_updates(ctx.device):
            for j in range(0, len(idx), cfg.update_freq):
                parts = tuple(idx[j:j + cfg.update_freq])
                n = sum(len(b) for b in parts)
                out.append(Batch(epoch, [i for b in parts for i in b], flat[k:k + n], parts, True))
                k += n
            return out
        for b in idx:
            out.append(Batch(epoch, b, flat[k:k + len(b)], (b,)))
            k += len(b)
        return out
    return batches


def per_batch_mean(values, batch, ntoks, update_freq):
    """A merged step's loss: sum over its batches of (the batch's values summed / its tokens), divided by
    update_freq -- what the accumulated steps of one batch each add to the gradient."""
    parts = values.split([len(p) for p in batch.parts])
    return sum(v.sum() / n for v, n in zip(parts, ntoks)) / update_freq


def optimizer(params, cfg, lengths):
    """AdamW and the lr schedule. lengths() -> (source lengths, target lengths) of an epoch's
    examples, read only by the cosine schedule: its length is max_epoch x updates per epoch, or
    --max-update when that is smaller."""
    # fused: one kernel for every parameter's update on a GPU (the foreach default launches several per
    # tensor group); a CPU keeps torch's default, whose numbers the smoke and cpu runs were made with
    fused = True if params and params[0].is_cuda else None
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay,
                            fused=fused)
    total = 0
    if cfg.lr_scheduler == "cosine":
        n_batches = len(token_batches(*lengths(), cfg.max_tokens, shuffle=False))
        total = cfg.max_epoch * -(-n_batches // cfg.update_freq)
        if cfg.max_update:
            total = min(total, cfg.max_update)
    return opt, schedule.build(cfg.lr_scheduler, opt, cfg.warmup_updates, total, cfg.min_lr_ratio, cfg.warmup_init_lr)


def tables(sources, tgts, device):
    """table(epoch) -> (source TokenTable of that epoch's sources, target TokenTable), on the device; a
    source table is rebuilt only when sources(epoch) is a new list (a fresh corruption per epoch)."""
    tgt_table = TokenTable(tgts, device)
    held = {"srcs": None, "table": None}

    def table(epoch):
        srcs = sources(epoch)
        if srcs is not held["srcs"]:
            held["srcs"], held["table"] = srcs, TokenTable(srcs, device)
        return held["table"], tgt_table
    return table


def ce_step(model, sources, tgts, cfg, device):
    """The label-smoothed cross-entropy step; sources(epoch) -> the epoch's source id lists. Nothing in
    it waits for the device: the token count comes from the host's lengths, the logged NLL stays a
    device tensor (float64, as the float it replaced)."""
    table = tables(sources, tgts, device)

    def step(batch):
        src_table, tgt_table = table(batch.epoch)
        b = src_table.collate(tgt_table, batch.idx, batch.rows)
        loss, nll = batch_nll(model, b, cfg.label_smoothing_at(batch.epoch))
        ntok = sum(tgt_table.lens[i] for i in batch.idx)  # = b["tgt_mask"].sum(): targets hold no PAD
        if batch.merged:
            ntoks = [sum(tgt_table.lens[i] for i in p) for p in batch.parts]
            return (per_batch_mean(loss, batch, ntoks, cfg.update_freq), ntok,
                    {"nll": per_batch_mean(nll.detach().double(), batch, ntoks, cfg.update_freq)})
        return loss.sum() / ntok, ntok, {"nll": nll.detach().sum().double() / ntok}
    return step


def ce_validation(run, model, vs, vt, cfg, device, max_len):
    """validate() -> val_nll and, every --val-decode-interval epochs, val_exact: greedy outputs equal to
    the gold target (token ids; no judging, so cheap enough to log a curve). Greedy decoding draws no
    random numbers, so logging it does not change training."""
    def validate():
        out = {"val_nll": validation_nll(model, vs, vt, device, eval_tokens(cfg, device))}
        every = cfg.val_decode_interval
        if every and (run.n_metrics() + 1) % every == 0:   # the epoch being validated (resume-safe)
            outs, _ = generate(model, vs, max_len=max_len, device=device)
            out["val_exact"] = sum(o + [EOS] == t for o, t in zip(outs, vt)) / max(len(vt), 1)
        return out
    return validate


def fit_stage(run, model, trainable, sources, tgts, step, validate, cfg, ctx, best_metric, also_best=()):
    """One call of the shared loop: AdamW over `trainable`, the epoch's batches, checkpoint selection by
    `best_metric` (lower is better) or the last epoch (--checkpoint-select last); `also_best`: metrics
    whose best epoch is kept as well (trainer.fit)."""
    tl = [len(t) for t in tgts]
    opt, sched = optimizer(trainable, cfg, lambda: ([len(s) for s in sources(1)], tl))
    n_params = sum(p.numel() for p in trainable)
    return fit(run, model, opt, epoch_batches(sources, tl, cfg, ctx), step, validate, max_epoch=cfg.max_epoch,
               scheduler=sched, update_freq=step_update_freq(cfg, ctx.device), clip_norm=cfg.clip_norm,
               best_metric=best_metric, best_mode="last" if cfg.checkpoint_select == "last" else "min",
               save_interval=cfg.save_interval, log_interval=cfg.log_interval, flops_per_item=6 * n_params,
               device=ctx.device,
               max_updates=cfg.max_update, ddp=ctx, precision_name=cfg.precision, also_best=also_best)
