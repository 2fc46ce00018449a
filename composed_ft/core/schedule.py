"""Learning-rate schedules (per optimizer update)."""
from torch.optim.lr_scheduler import LambdaLR


def inverse_sqrt(optimizer, warmup_updates, warmup_init_lr_ratio=0.0):
    """fairseq's inverse_sqrt: linear warmup to the base lr over `warmup_updates`, then lr ∝ 1/sqrt(update)."""

    def factor(step):
        step = step + 1
        if warmup_updates > 0 and step < warmup_updates:
            return warmup_init_lr_ratio + (1 - warmup_init_lr_ratio) * step / warmup_updates
        return (max(warmup_updates, 1) / step) ** 0.5

    return LambdaLR(optimizer, factor)
