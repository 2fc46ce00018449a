"""Arithmetic precision of training on a GPU (`--precision bf16|tf32|fp32`); CUDA only.

On a CPU every --precision computes in float32 and changes no number: the smoke and cpu presets give
the same results with any --precision. On CUDA:
  bf16 (default): the training step's forward (and so its backward) under bf16 autocast, and float32
        matrix products in TF32. Losses, log-softmax, normalizations and the optimizer stay float32
        (autocast keeps them there; the stages call .float() on logits), validation and decoding are
        not autocast (decode.generate turns it off: sampling and greedy choices in float32/TF32).
  tf32: float32 tensors, TF32 matrix products (10-bit mantissa inputs, float32 accumulation).
  fp32: plain float32 (for a bit-for-bit comparison with a CPU run's arithmetic).
bf16 needs no loss scaling (its exponent range is float32's).

Subnormal floats (`--denormals flush|keep`; CPU only): an L2-penalized model drives weights and Adam's
first moments of dead units into the subnormal range (below 1.2e-38), where x86 CPUs compute many times
slower; the font experiment's Composed run at 500 labels slowed ~4x past ~12k updates, with 83k subnormal
weights and 129k subnormal Adam moments at update 16,300. `flush` sets them to zero
(torch.set_flush_denormal): a number that small adds nothing a float32 sum can see. Measured from that
checkpoint (scripts/bench_imggen.py --denormals RUN_DIR, one thread): 0.62 s/update kept, 0.16 flushed,
and after 40 updates with the same batches and dropout masks both copies' validation MSE is 0.210012."""
import contextlib

import torch

PRECISIONS = ("bf16", "tf32", "fp32")
DENORMALS = ("flush", "keep")


def setup(device, precision):
    """The process-wide TF32 switches for a CUDA device (a no-op on a CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if device.type == "cuda":
        tf32 = precision in ("bf16", "tf32")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def set_denormals(device, mode):
    """Flush subnormal floats to zero on a CPU (`flush`) or compute with them (`keep`); process-wide."""
    if mode not in DENORMALS:
        raise ValueError(f"denormals must be one of {', '.join(DENORMALS)}, not {mode!r}")
    if device.type == "cpu":
        torch.set_flush_denormal(mode == "flush")


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
