"""InstanceNorm (no affine) + ReLU / LeakyReLU over channels-last float32 CPU tensors, one C kernel each way.

Why: the frozen U-Net's composed step runs its convolutions channels last (oneDNN's faster kernels), and torch's
only layout-preserving instance norm there, a group norm with one channel per group, is 3-6x slower on
channels-last input than on NCHW (torch.profiler: ~13% of the composed update at one thread; converting to NCHW
and back costs as much as it saves). nhwc_norm.c does norm and activation in two passes forward and two
backward. Built once per machine and C compiler into the project's cache (`cc -O3 -march=native`, ~1 s); where
no compiler is found, or CFT_NATIVE_NORM=0, `available()` is False and models.py's group norm runs instead (the
same function). Batch items are split across torch.get_num_threads() threads (ctypes releases the GIL)."""
import ctypes
import logging
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from composed_ft.core.io import BuildError, build_source_once

log = logging.getLogger(__name__)

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nhwc_norm.c")
_LIB, _LOCK = [], threading.Lock()
_POOL = {}
_I64, _F32, _PTR = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


def _cpu_flags():
    """The CPU's feature flags (-march=native builds for them: a cache shared across machines must not mix)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return ""


def _load():
    if os.environ.get("CFT_NATIVE_NORM", "1") == "0":
        return None
    cc = os.environ.get("CC", "cc")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        log.warning("no C compiler (%s: %s): the U-Net's channels-last instance norm runs as torch's group norm", cc, e)
        return None
    try:
        built = build_source_once("nhwc-norm", _SOURCE, lambda src, tmp: [
            cc, "-O3", "-march=native", "-std=c99", "-fPIC", "-shared", src, "-o",
            os.path.join(tmp, "libnhwc_norm.so"), "-lm"], key_parts=(version, _cpu_flags()))
        lib = ctypes.CDLL(os.path.join(built, "libnhwc_norm.so"))
    except (BuildError, OSError) as e:
        log.warning("%s; the U-Net's channels-last instance norm runs as torch's group norm", e)
        return None
    lib.inorm_act_forward.argtypes = [_PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _F32, _F32]
    lib.inorm_act_backward.argtypes = [_PTR, _PTR, _I64, _I64, _PTR, _PTR, _PTR, _I64, _I64, _I64, _F32]
    lib.inorm_act_forward.restype = lib.inorm_act_backward.restype = None
    return lib


def library():
    """The built kernels (a ctypes library), or None where they cannot be built."""
    with _LOCK:
        if not _LIB:
            _LIB.append(_load())
        return _LIB[0]


def available():
    return library() is not None


def _split(n_items, call):
    """call(first, count) over the batch items, in torch.get_num_threads() contiguous ranges at once."""
    n = min(torch.get_num_threads(), n_items)
    if n <= 1:
        call(0, n_items)
        return
    if n not in _POOL:
        _POOL[n] = ThreadPoolExecutor(n, thread_name_prefix="nhwc-norm")
    bounds = [n_items * i // n for i in range(n + 1)]
    for f in [_POOL[n].submit(call, a, b - a) for a, b in zip(bounds, bounds[1:])]:
        f.result()


def _nhwc(t):
    """t itself when its (B, C, H, W) view is channels-last contiguous, else a channels-last copy."""
    B, C, H, W = t.shape
    return t if t.stride() == (H * W * C, 1, W * C, C) else t.contiguous(memory_format=torch.channels_last)


class _InstanceNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps, slope):
        lib, x = library(), _nhwc(x)
        B, C, H, W = x.shape
        out, mean, rstd = torch.empty_like(x), x.new_empty(B, C), x.new_empty(B, C)
        px, po, pm, pr = x.data_ptr(), out.data_ptr(), mean.data_ptr(), rstd.data_ptr()
        item, n = H * W * C * 4, C * 4  # bytes per batch item, per item's statistics
        _split(B, lambda a, k: lib.inorm_act_forward(px + a * item, po + a * item, pm + a * n, pr + a * n,
                                                     k, H * W, C, eps, slope))
        ctx.save_for_backward(x, mean, rstd)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx, g):
        lib = library()
        x, mean, rstd = ctx.saved_tensors
        B, C, H, W = x.shape
        sb, sc, sh, sw = g.stride()
        if g.dtype != torch.float32 or sc != 1 or sh != W * sw:  # the kernel reads channels-contiguous pixels
            g = g.float().contiguous(memory_format=torch.channels_last)
            sb, sc, sh, sw = g.stride()
        dx = torch.empty_like(x)
        px, pg, pm, pr, pd = x.data_ptr(), g.data_ptr(), mean.data_ptr(), rstd.data_ptr(), dx.data_ptr()
        item, n = H * W * C * 4, C * 4
        _split(B, lambda a, k: lib.inorm_act_backward(px + a * item, pg + a * sb * 4, sb, sw, pm + a * n,
                                                      pr + a * n, pd + a * item, k, H * W, C, ctx.slope))
        return dx, None, None


def instance_norm_act(x, eps=1e-5, slope=0.0):
    """act(instance_norm(x)) for a float32 CPU (B, C, H, W) tensor, returned channels last; act is ReLU (slope
    0) or LeakyReLU(slope). Requires `available()`."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 4:
        raise ValueError(f"instance_norm_act: a float32 CPU (B, C, H, W) tensor, got {x.dtype} {tuple(x.shape)} "
                         f"on {x.device}")
    return _InstanceNormAct.apply(x, float(eps), float(slope))
