"""Learning-rate schedules (per optimizer update), as LambdaLR factors of the base lr."""
import math

from torch.optim.lr_scheduler import LambdaLR

SCHEDULERS = ("inverse_sqrt", "cosine")


def _warmup(step, warmup_updates, init_ratio):
    return init_ratio + (1 - init_ratio) * step / warmup_updates


def inverse_sqrt(optimizer, warmup_updates, warmup_init_lr_ratio=0.0):
    """fairseq's inverse_sqrt: linear warmup from warmup_init_lr_ratio x the base lr (fairseq's
    --warmup-init-lr) to the base lr over `warmup_updates`, then lr ∝ 1/sqrt(update)."""

    def factor(step):
        step = step + 1
        if warmup_updates > 0 and step < warmup_updates:
            return _warmup(step, warmup_updates, warmup_init_lr_ratio)
        return (max(warmup_updates, 1) / step) ** 0.5

    return LambdaLR(optimizer, factor)


def cosine(optimizer, warmup_updates, total_updates, min_ratio=0.0, warmup_init_lr_ratio=0.0):
    """Linear warmup, then a half cosine from the base lr down to min_ratio x base lr at
    `total_updates` (held there after). Why beside inverse_sqrt: a run with a fixed, short budget
    ends at lr 0 instead of at 1/sqrt(updates/warmup) of the peak, so its last epochs anneal
    instead of bouncing between checkpoints (results/NOTES.md, the SansType Direct proxies)."""
    if total_updates <= warmup_updates:
        raise ValueError(f"cosine schedule: total updates ({total_updates}) must exceed the warmup ({warmup_updates})")

    def factor(step):
        step = step + 1
        if warmup_updates > 0 and step < warmup_updates:
            return _warmup(step, warmup_updates, warmup_init_lr_ratio)
        progress = min(1.0, (step - warmup_updates) / (total_updates - warmup_updates))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def build(name, optimizer, warmup_updates, total_updates=0, min_ratio=0.0, warmup_init_lr=0.0):
    """The scheduler `name` (one of SCHEDULERS); warmup_init_lr: the absolute lr the warmup starts from
    (fairseq's --warmup-init-lr; 0 starts from 0)."""
    base = optimizer.param_groups[0]["lr"]
    ratio = warmup_init_lr / base if base else 0.0
    if name == "inverse_sqrt":
        return inverse_sqrt(optimizer, warmup_updates, ratio)
    if name == "cosine":
        return cosine(optimizer, warmup_updates, total_updates, min_ratio, ratio)
    raise ValueError(f"unknown lr scheduler {name!r} (choose from {', '.join(SCHEDULERS)})")
