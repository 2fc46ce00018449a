"""What every seq2seq stage trains with: the run directory and its resolved config (`prepare`), the
optimizer and schedule, one epoch's token batches, the cross-entropy step and validation, and one
call of the shared training loop (composed_ft.core.trainer.fit). The stages (stages.py) differ only
in their data, their model and, for Composed, their step."""
import logging
from typing import List, NamedTuple

import torch

from composed_ft.code import config
from composed_ft.code.batching import collate, epoch_generator, shard, token_batches
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
    finished (its results stand) or its --max-epoch is 0 (the stage is off). ctx is the torchrun
    context (one process without torchrun); rank 0 builds the vocabulary and writes the run directory,
    the others wait."""
    run = Run(args.run_dir)
    if run.finished:
        log.info("%s: finished already, nothing to do", run.path)
        return None
    ctx = distributed.setup(args.device)
    cfg = config.resolve(args, stage, ctx)
    if cfg.max_epoch == 0:
        log.info("%s: --max-epoch 0, the stage is off", run.path)
        ctx.close()
        return None
    corpus = Corpus(cfg)
    run.config = cfg.to_dict()
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
    """One batch of an epoch: the epoch travels with it to the loss (label smoothing can switch)."""
    epoch: int
    idx: List[int]


def epoch_batches(sources, tgt_lens, cfg, ctx):
    """batches(epoch) for the training loop: token batches of that epoch's sources, shuffled (the same
    order on every torchrun process), this process's slice of each."""
    def batches(epoch):
        src_lens = [len(s) for s in sources(epoch)]
        idx = token_batches(src_lens, tgt_lens, cfg.max_tokens, shuffle=True,
                            generator=epoch_generator(cfg.seed, ctx, epoch))
        return [Batch(epoch, b) for b in shard(idx, ctx)]
    return batches


def optimizer(params, cfg, lengths):
    """AdamW and the lr schedule. lengths() -> (source lengths, target lengths) of an epoch's
    examples, read only by the cosine schedule: its length is max_epoch x updates per epoch, or
    --max-update when that is smaller."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)
    total = 0
    if cfg.lr_scheduler == "cosine":
        n_batches = len(token_batches(*lengths(), cfg.max_tokens, shuffle=False))
        total = cfg.max_epoch * -(-n_batches // cfg.update_freq)
        if cfg.max_update:
            total = min(total, cfg.max_update)
    return opt, schedule.build(cfg.lr_scheduler, opt, cfg.warmup_updates, total, cfg.min_lr_ratio)


def ce_step(model, sources, tgts, cfg, device):
    """The label-smoothed cross-entropy step; sources(epoch) -> the epoch's source id lists."""
    def step(batch):
        srcs = sources(batch.epoch)
        b = collate([srcs[i] for i in batch.idx], [tgts[i] for i in batch.idx], device)
        loss, nll = batch_nll(model, b, cfg.label_smoothing_at(batch.epoch))
        ntok = int(b["tgt_mask"].sum())
        return loss.sum() / ntok, ntok, {"nll": float(nll.detach().sum()) / ntok}
    return step


def ce_validation(run, model, vs, vt, cfg, device, max_len):
    """validate() -> val_nll and, every --val-decode-interval epochs, val_exact: greedy outputs equal to
    the gold target (token ids; no judging, so cheap enough to log a curve). Greedy decoding draws no
    random numbers, so logging it does not change training."""
    def validate():
        out = {"val_nll": validation_nll(model, vs, vt, device, cfg.max_tokens)}
        every = cfg.val_decode_interval
        if every and (run.n_metrics() + 1) % every == 0:   # the epoch being validated (resume-safe)
            outs, _ = generate(model, vs, max_len=max_len, device=device)
            out["val_exact"] = sum(o + [EOS] == t for o, t in zip(outs, vt)) / max(len(vt), 1)
        return out
    return validate


def fit_stage(run, model, trainable, sources, tgts, step, validate, cfg, ctx, best_metric):
    """One call of the shared loop: AdamW over `trainable`, the epoch's batches, checkpoint selection by
    `best_metric` (lower is better) or the last epoch (--checkpoint-select last)."""
    tl = [len(t) for t in tgts]
    opt, sched = optimizer(trainable, cfg, lambda: ([len(s) for s in sources(1)], tl))
    n_params = sum(p.numel() for p in trainable)
    return fit(run, model, opt, epoch_batches(sources, tl, cfg, ctx), step, validate, max_epoch=cfg.max_epoch,
               scheduler=sched, update_freq=cfg.update_freq, clip_norm=cfg.clip_norm, best_metric=best_metric,
               best_mode="last" if cfg.checkpoint_select == "last" else "min", save_interval=cfg.save_interval,
               log_interval=cfg.log_interval, flops_per_item=6 * n_params, device=ctx.device,
               max_updates=cfg.max_update, ddp=ctx)
