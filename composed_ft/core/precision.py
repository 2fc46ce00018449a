"""Arithmetic precision of training on a GPU (`--precision bf16|tf32|fp32`); CUDA only.

On a CPU every choice computes in float32 and nothing here changes a number: the smoke and cpu presets
give the same results with any --precision. On CUDA:
  bf16 (default): the training step's forward (and so its backward) under bf16 autocast, and float32
        matrix products in TF32. Losses, log-softmax, normalizations and the optimizer stay float32
        (autocast keeps them there; the stages call .float() on logits), validation and decoding are
        not autocast (decode.generate turns it off: sampling and greedy choices in float32/TF32).
  tf32: float32 tensors, TF32 matrix products (10-bit mantissa inputs, float32 accumulation).
  fp32: plain float32 (for a bit-for-bit comparison with a CPU run's arithmetic).
bf16 needs no loss scaling (its exponent range is float32's)."""
import contextlib

import torch

PRECISIONS = ("bf16", "tf32", "fp32")


def setup(device, precision):
    """The process-wide TF32 switches for a CUDA device (a no-op on a CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if device.type == "cuda":
        tf32 = precision in ("bf16", "tf32")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(device, precision):
    """The context a training step runs in: bf16 autocast on CUDA, nothing otherwise."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def no_autocast(device):
    """Turn autocast off inside (decoding runs in float32 even when called from an autocast step; where
    none is active, as in every CPU run, this changes nothing)."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
