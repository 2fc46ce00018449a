"""Throughput accounting: achieved FLOP/s against this machine's measured matrix-multiply peak.

nanoGPT prints MFU against a GPU's datasheet peak; a CPU has no honest datasheet number, so we
measure the peak once per process with a large sgemm on the same device and thread count."""
import functools
import time

import torch


@functools.lru_cache(maxsize=None)
def gemm_peak_flops(device_type="cpu", n=None, reps=None):
    """Best-of-`reps` FLOP/s of an n x n float32 matmul on this device (cached per process)."""
    if device_type == "cuda":
        n, reps = n or 8192, reps or 10
    else:
        n, reps = n or 1536, reps or 3
    a = torch.randn(n, n, device=device_type)
    b = torch.randn(n, n, device=device_type)
    best = float("inf")
    for _ in range(reps + 1):  # the first rep warms up
        if device_type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


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
