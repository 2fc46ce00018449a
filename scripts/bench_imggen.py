"""Benchmark the composed training step of the font experiment against the authors' way.

Same models (the paper's MLP and U-Net of width 64), same batch (256), same process, interleaved
repetitions, median step time. The authors' way: the denoiser's weights still require grad (so
backward computes weight gradients nobody uses), the L2 penalty rebuilt in Python each step as a
sum over named parameters, torch's nn.Upsample. Ours: frozen denoiser (requires_grad_(False),
eval), one fused foreach-norm for the penalty, upsampling as expand + reshape. Each change is also
measured alone, and the step's achieved GFLOP/s is compared with this machine's measured sgemm peak.

    python scripts/bench_imggen.py [--batch 256] [--width 64] [--reps 7]
    python scripts/bench_imggen.py --denoiser-widths 16 32 [--reps 12]

The second form times one denoiser training update (U-Net forward, MSE, backward, Adam) per width,
interleaved in one process: the fair cost ratio of the widths for the denoiser's quality-vs-time
curve (imggen/README.md), which a run's own clock on a shared machine cannot give.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from composed_ft.core.compose import freeze, l2_penalty, nonbias_params
from composed_ft.core.perf import forward_flops, gemm_peak_flops
from composed_ft.imggen.models import MLPGenerator, UNet, Upsample2x


def authors_unet(width):
    """Same weights layout, nn.Upsample instead of Upsample2x, weights left requiring grad."""
    u = UNet(width)
    i = next(i for i, m in enumerate(u.out) if isinstance(m, Upsample2x))
    u.out[i] = nn.Upsample(scale_factor=2, mode="nearest")
    return u.eval()


def python_l2(model):
    return sum(p.pow(2).sum() for n, p in model.named_parameters() if "bias" not in n)


def make_step(f, u, fused_l2, batch):
    font, char, y = batch
    opt = torch.optim.Adam([p for p in f.parameters()], lr=2e-4, betas=(0.5, 0.999))
    wp = nonbias_params(f)

    def step():
        loss = F.mse_loss(u(f(font, char)), y) + 1e-4 * (l2_penalty(wp) if fused_l2 else python_l2(f))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench(batch=256, width=64, reps=7, warmup=2):
    torch.manual_seed(0)
    data = (torch.randint(0, 100, (batch,)), torch.randint(0, 62, (batch,)), torch.rand(batch, 1, 32, 32) * 2 - 1)
    variants = {}
    for name, frozen, fused, fast_up in [("authors' way", False, False, False), ("frozen only", True, False, False),
                                         ("fused L2 only", False, True, False), ("Upsample2x only", False, False, True),
                                         ("ours (all three)", True, True, True)]:
        f = MLPGenerator(dropout=0.1).train()
        u = UNet(width).eval() if fast_up else authors_unet(width)
        if frozen:
            freeze(u)
        variants[name] = make_step(f, u, fused, data)
    for step in variants.values():
        for _ in range(warmup):
            step()
    times = {k: [] for k in variants}
    for _ in range(reps):  # interleaved, so background load affects every variant alike
        for k, step in variants.items():
            t = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    f, u = MLPGenerator(), UNet(width)
    flops = batch * (3 * forward_flops(f, *data[:2]) + 2 * forward_flops(u, data[2]))
    peak = gemm_peak_flops("cpu")
    base = med["authors' way"]
    rows = [(k, v, base / v) for k, v in med.items()]
    return {"rows": rows, "flops_per_step": flops, "gflops": flops / med["ours (all three)"] / 1e9,
            "peak_gflops": peak / 1e9, "threads": torch.get_num_threads(), "batch": batch, "width": width}


def report(r):
    lines = [f"composed imggen step, batch {r['batch']}, U-Net width {r['width']}, {r['threads']} threads "
             f"(median of interleaved reps)", "", "| variant | s/step | speed-up vs authors' way |", "|---|---|---|"]
    lines += [f"| {k} | {v:.3f} | {x:.2f}x |" for k, v, x in r["rows"]]
    lines += ["", f"ours: {r['gflops']:.1f} GFLOP/s achieved (forward+backward FLOPs counted from the layers) = "
              f"{100 * r['gflops'] / r['peak_gflops']:.0f}% of this machine's measured sgemm peak "
              f"({r['peak_gflops']:.1f} GFLOP/s)"]
    return "\n".join(lines)


def bench_denoiser(widths, batch=256, reps=12, warmup=2):
    """{width: median seconds of one denoiser update}, the widths interleaved."""
    torch.manual_seed(0)
    x = torch.rand(batch, 1, 32, 32) * 2 - 1
    steps = {}
    for w in widths:
        u = UNet(w).train()
        opt = torch.optim.Adam(u.parameters(), lr=2e-4, betas=(0.5, 0.999))

        def step(u=u, opt=opt):
            loss = F.mse_loss(u(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steps[w] = step
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {w: [] for w in steps}
    for _ in range(reps):
        for w, step in steps.items():
            t = time.perf_counter()
            step()
            times[w].append(time.perf_counter() - t)
    return {w: statistics.median(v) for w, v in times.items()}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--denoiser-widths", type=int, nargs="+", help="time a denoiser update at these U-Net widths")
    a = p.parse_args()
    if a.denoiser_widths:
        med = bench_denoiser(a.denoiser_widths, a.batch, max(a.reps, 12))
        print(f"denoiser update, batch {a.batch}, {torch.get_num_threads()} threads (median of interleaved reps)")
        w0 = a.denoiser_widths[0]
        for w, t in med.items():
            print(f"  width {w}: {1000 * t:.0f} ms/update ({t / med[w0]:.2f}x width {w0})")
    else:
        print(report(bench(a.batch, a.width, a.reps)))
