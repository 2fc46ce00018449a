"""Throughput accounting: achieved FLOP/s against this machine's measured matrix-multiply peak.

nanoGPT prints MFU against a GPU's datasheet peak; a CPU has no honest datasheet number, so we
measure the peak with a large sgemm on the same device and thread count. One measurement taken
while another process holds a core reads low (a run once logged "MFU 101%"), so the peak is the
best ever measured on this machine, kept per (processor, device, threads, torch) in the project's
cache (`core.io.cache_root()`): every run measures again and only raises it."""
import functools
import json
import os
import time

import torch

from .io import cache_root, write_json


def measure_gemm_flops(device_type="cpu", n=None, reps=None):
    """Best-of-`reps` FLOP/s of an n x n float32 matmul on this device, measured now."""
    if device_type == "cuda":
        n, reps = n or 8192, reps or 10
    else:
        n, reps = n or 1536, reps or 3
    # a private generator: the global RNG belongs to the run (fit() measures this after seeding, and
    # after restoring a resumed run's RNG state), so drawing from it would shift dropout and shuffling
    gen = torch.Generator(device=device_type).manual_seed(0)
    a = torch.randn(n, n, device=device_type, generator=gen)
    b = torch.randn(n, n, device=device_type, generator=gen)
    best = float("inf")
    for _ in range(reps + 1):  # the first rep warms up
        if device_type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def _peak_key(device_type):
    from .machine import cpu_model
    dev = torch.cuda.get_device_name(0) if device_type == "cuda" else cpu_model()
    return f"{device_type}|{dev}|threads={torch.get_num_threads()}|torch={torch.__version__}"


@functools.lru_cache(maxsize=None)
def gemm_peak_flops(device_type="cpu", cache_file=None):
    """This machine's GEMM peak: max of a measurement now and the best recorded in `cache_file`
    (default <cache_root>/gemm_peak.json), which is raised when the new measurement beats it.
    Cached per process. An unwritable cache only costs the stability of the number."""
    measured = measure_gemm_flops(device_type)
    path = cache_file or os.path.join(cache_root(), "gemm_peak.json")
    key = _peak_key(device_type)
    try:
        with open(path) as f:
            table = json.load(f)
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    best = max(measured, float(table.get(key, 0.0)))
    if best > float(table.get(key, 0.0)):
        table[key] = best
        try:
            write_json(path, table)
        except OSError:
            pass
    return best


def forward_flops(module, *example_inputs):
    """Forward FLOPs per example of every Conv/ConvTranspose/Linear layer, found by running the
    module once on the first example of `example_inputs`."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Linear):
            total += 2 * m.in_features * m.out_features * out[0].numel() // m.out_features
        elif isinstance(m, torch.nn.Conv2d):
            k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total += 2 * k * out[0].numel()
        elif isinstance(m, torch.nn.ConvTranspose2d):
            k = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total += 2 * k * inp[0][0].numel()

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    was_training = module.training
    module.eval()
    with torch.no_grad():
        module(*[x[:1] for x in example_inputs])
    module.train(was_training)
    for h in handles:
        h.remove()
    return total
