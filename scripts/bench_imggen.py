"""Benchmark the composed training step of the font experiment against the authors' way.

Same models (the paper's MLP and U-Net of width 64), same batch (256), same process, interleaved
repetitions, median step time. The authors' way: the denoiser's weights still require grad (so
backward computes weight gradients nobody uses), the L2 penalty rebuilt in Python each step as a
sum over named parameters, and the output block as they wrote it: nn.Upsample(2) -> ZeroPad2d ->
4x4 conv over the 2w-channel full-resolution tensor. Ours: frozen denoiser (requires_grad_(False),
eval), one fused foreach-norm for the penalty, and the output block as UpsampleConv (four 3x3 phase
convs at half resolution + pixel_shuffle, no upsampled tensor; models.py). Each change is also
measured alone, plus this project's previous output block (expand-upsample + padded conv), and the
step's achieved GFLOP/s is compared with this machine's measured sgemm peak.

    python scripts/bench_imggen.py [--batch 256] [--width 64] [--reps 7]
    python scripts/bench_imggen.py --denoiser-widths 16 32 [--reps 12]

The second form times one denoiser training update (U-Net forward, MSE, backward, Adam) per width,
interleaved in one process: the fair cost ratio of the widths for the denoiser's quality-vs-time
curve (imggen/README.md), which a run's own clock on a shared machine cannot give; with
`--output-blocks` it also times each width with the earlier output blocks.
`--direct` adds the Direct step (the MLP alone) to the first form: its cost beside the composed step's.

    python scripts/bench_imggen.py --stages [--width 16] [--idle-direct-s 0.036] [--reps 12]

times one update of each stage of the runner (denoiser, Direct, Composed at the cpu preset's U-Net width),
interleaved in one process. On a shared machine the absolute times are inflated by the load; the Direct
step's time on the idle machine (`--idle-direct-s`, measured before by the runner's own clock) turns the
other two into idle estimates, assuming the load slows every stage alike: the estimate of a stage's idle
time is its time now x (idle Direct / Direct now).

    python scripts/bench_imggen.py --speedups [--width 16]

times the composed update as the runner computes it against torch.compile of the frozen U-Net and bf16
autocast of the step, interleaved (bench_speedups).

    python scripts/bench_imggen.py --update [--width 16] [--reps 15] [--compile] [--profile] [--curve]

the composed update as train.py computes it today (f through FrozenUNet: models.py) against the previous
implementation (f through the UNet module, eager) and the Direct step, interleaved in one process: seconds,
counted FLOPs, the ratio to Direct, MFU against the sgemm peak measured in the same run, and pass/fail lines for
issue 38's targets (bench_update). `--compile` adds torch.compile of the whole train step (forward and backward;
its compile time is reported), `--profile` a torch.profiler table per step (profile_update), `--curve` the
validation-curve check: a short real Composed run at a fixed seed, previous vs today's step (curve_check; on
data/fonts/fonts32.npz when built, else on the tests' synthetic fonts).

    python scripts/bench_imggen.py --jobs --width 16 [--updates 300]

the runner's JOBS question (issue 38, deliver 4): the composed update (today's, and Direct's) run by one
process at 2 threads against two processes at 1 thread each side by side, and one at 1 thread alone; each
process times --updates updates after a warm-up; printed: updates per second of the machine in each layout and
the ratio (bench_jobs). Run it on idle cores.
"""
import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from composed_ft.core.compose import Composed, freeze, l2_penalty, nonbias_params
from composed_ft.core.objective import composed_mse
from composed_ft.core.perf import forward_flops, gemm_peak_flops, measure_gemm_flops
from composed_ft.imggen import instance_norm
from composed_ft.imggen.models import FrozenUNet, MLPGenerator, PaddedConv, UNet, Upsample2x

OUTPUT_BLOCKS = ("authors", "padded", "subpixel")


def interleaved(steps, reps, warmup):
    """{name: median seconds of one call} of each step() after `warmup` untimed calls, timed in turn
    rep by rep, so background load affects every step alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {k: [] for k in steps}
    for _ in range(reps):
        for k, step in steps.items():
            t = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def with_output_block(u, kind):
    """u with its output block (nearest 2x upsample, 4x4 conv to one channel, tanh) computed one of three
    ways, same weights: `authors` nn.Upsample -> ZeroPad2d((1, 0, 1, 0)) -> Conv2d(k 4, padding 1);
    `padded` this project's previous Upsample2x (expand + reshape) -> PaddedConv; `subpixel` today's
    UpsampleConv (the model's own)."""
    if kind == "subpixel":
        return u
    conv = u.out[1]
    new = nn.Conv2d(conv.in_channels, 1, 4, 1, 1) if kind == "authors" else PaddedConv(conv.in_channels)
    new.load_state_dict(conv.state_dict())
    if kind == "authors":
        up = [nn.Upsample(scale_factor=2, mode="nearest"), nn.ZeroPad2d((1, 0, 1, 0))]
    else:
        up = [Upsample2x()]
    u.out = nn.Sequential(*up, new, nn.Tanh())
    return u


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


def make_direct_step(f, batch):
    font, char, y = batch
    opt = torch.optim.Adam([p for p in f.parameters()], lr=2e-4, betas=(0.5, 0.999))

    def step():
        loss = F.mse_loss(f(font, char), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench(batch=256, width=64, reps=7, warmup=2, direct=False):
    torch.manual_seed(0)
    data = (torch.randint(0, 100, (batch,)), torch.randint(0, 62, (batch,)), torch.rand(batch, 1, 32, 32) * 2 - 1)
    variants = {}
    for name, frozen, fused, block in [("authors' way", False, False, "authors"),
                                       ("frozen only", True, False, "authors"),
                                       ("fused L2 only", False, True, "authors"),
                                       ("UpsampleConv only", False, False, "subpixel"),
                                       ("ours before UpsampleConv (Upsample2x + PaddedConv)", True, True, "padded"),
                                       ("ours (all three)", True, True, "subpixel")]:
        f = MLPGenerator(dropout=0.1).train()
        u = with_output_block(UNet(width), block).eval()
        if frozen:
            freeze(u)
        variants[name] = make_step(f, u, fused, data)
    if direct:
        variants["Direct step (the MLP alone)"] = make_direct_step(MLPGenerator().train(), data)
    med = interleaved(variants, reps, warmup)
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
    lines += ["", f"ours: {r['gflops']:.1f} GFLOP/s achieved (forward+backward FLOPs counted from the layers, the "
              f"output block as the authors' full-resolution conv) = "
              f"{100 * r['gflops'] / r['peak_gflops']:.0f}% of this machine's measured sgemm peak "
              f"({r['peak_gflops']:.1f} GFLOP/s)"]
    return "\n".join(lines)


def bench_denoiser(widths, batch=256, reps=12, warmup=2, blocks=("subpixel",)):
    """{width (or (width, output block) with several blocks): median seconds of one denoiser update},
    interleaved."""
    torch.manual_seed(0)
    x = torch.rand(batch, 1, 32, 32) * 2 - 1
    steps = {}
    for w, block in [(w, b) for w in widths for b in blocks]:
        u = with_output_block(UNet(w), block).train()
        opt = torch.optim.Adam(u.parameters(), lr=2e-4, betas=(0.5, 0.999))

        def step(u=u, opt=opt):
            loss = F.mse_loss(u(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steps[w if len(blocks) == 1 else (w, block)] = step
    return interleaved(steps, reps, warmup)


def bench_stages(width=16, batch=256, reps=12, warmup=2):
    """{stage: median seconds of one training update}: denoiser, Direct, Composed, interleaved."""
    torch.manual_seed(0)
    data = (torch.randint(0, 100, (batch,)), torch.randint(0, 62, (batch,)), torch.rand(batch, 1, 32, 32) * 2 - 1)
    u = UNet(width).train()
    opt = torch.optim.Adam(u.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def denoiser_step():
        loss = F.mse_loss(u(data[2]), data[2])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    steps = {"denoiser": denoiser_step, "direct": make_direct_step(MLPGenerator().train(), data),
             "composed": make_step(MLPGenerator(dropout=0.1).train(), freeze(UNet(width)), True, data)}
    return interleaved(steps, reps, warmup)


def bench_speedups(width=16, batch=256, reps=15, warmup=3):
    """The composed update at the cpu preset's width as the runner computes it (float32, eager), against two
    ways to make it faster that the project does not use: torch.compile of the frozen U-Net (same math,
    other float rounding) and bf16 autocast of the whole step (other numbers: a variant with its own row
    if ever used). Interleaved: {name: median seconds per update}, plus the seconds compile took."""
    torch.manual_seed(0)
    data = (torch.randint(0, 100, (batch,)), torch.randint(0, 62, (batch,)), torch.rand(batch, 1, 32, 32) * 2 - 1)
    steps, compile_s = {}, None
    for name, compiled, bf16 in (("float32 eager (as run)", False, False),
                                 ("torch.compile of the frozen U-Net", True, False),
                                 ("bf16 autocast of the step", False, True)):
        f, u = MLPGenerator(dropout=0.1).train(), freeze(UNet(width))
        step = make_step(f, torch.compile(u) if compiled else u, True, data)
        if bf16:
            step = _under_bf16_autocast(step)
        if compiled:
            t = time.perf_counter()
            step()  # the compilation
            compile_s = time.perf_counter() - t
        steps[name] = step
    return interleaved(steps, reps, warmup), compile_s


def _under_bf16_autocast(step):
    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step()
    return run


def subnormals(tensors):
    """How many nonzero entries of the float tensors are subnormal (below float32's smallest normal)."""
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in tensors if t.is_floating_point())


def bench_denormals(run_dir, updates=10, reps=5, warmup=1):
    """A predictor run's training update as it is at its last checkpoint (its f, Adam state and data), with
    subnormal floats kept and flushed to zero (core.precision.set_denormals), interleaved in one process:
    {mode: median seconds per update}, the subnormal counts of the checkpoint, and each copy's validation
    MSE after its updates (how far the two modes' arithmetic has drifted apart by then)."""
    import copy
    import json
    import os

    from composed_ft.core import checkpoint, precision
    from composed_ft.core.compose import Composed
    from composed_ft.imggen import data
    from composed_ft.imggen.train import l2_params, load_denoiser
    cfg = json.load(open(os.path.join(run_dir, "config.json")))["config"]
    ck = checkpoint.load(os.path.join(run_dir, "checkpoint_last.pt"))
    cpu = torch.device("cpu")
    denoiser, _ = load_denoiser(cfg["denoiser"], cpu)
    splits = data.load_labeled(cfg["data"], cfg["data_seed"], n_train=cfg["n_train"])
    tr, va = splits["train"], splits["val"]
    counts = {"weights": subnormals(ck["model"].values()),
              "Adam moments": subnormals(t for st in ck["optimizer"]["state"].values() for t in st.values())}
    copies = {}
    for mode in ("keep", "flush"):
        f = MLPGenerator(n_fonts=100, image_size=splits["info"]["image_size"], dropout=cfg["dropout"],
                         bn_eps=cfg["bn_eps"])
        model = Composed(f, denoiser) if cfg["method"] == "composed" else f
        model.load_state_dict(copy.deepcopy(ck["model"]))
        opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=cfg["lr"],
                               betas=(cfg["beta1"], cfg["beta2"]))
        opt.load_state_dict(copy.deepcopy(ck["optimizer"]))
        copies[mode] = (model.train(), opt, l2_params(f, cfg["l2_scope"]), torch.Generator().manual_seed(0))
    rng = {mode: torch.manual_seed(0).get_state() for mode in copies}  # the same dropout masks in both copies

    def run(mode):
        model, opt, penalized, gen = copies[mode]
        precision.set_denormals(cpu, mode)
        torch.set_rng_state(rng[mode])
        for _ in range(updates):
            idx = torch.randint(0, len(tr), (cfg["batch_size"],), generator=gen)
            loss = F.mse_loss(model(tr.font[idx], tr.char[idx]), tr.image[idx])
            if cfg["l2"] > 0:
                loss = loss + cfg["l2"] * l2_penalty(penalized)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rng[mode] = torch.get_rng_state()
    med = interleaved({m: (lambda m=m: run(m)) for m in copies}, reps, warmup)
    precision.set_denormals(cpu, "keep")
    val = {}
    with torch.no_grad():
        for mode, (model, *_rest) in copies.items():
            val[mode] = F.mse_loss(model.eval()(va.font, va.char), va.image).item()
    n = (reps + warmup) * updates
    return {"s_per_update": {m: t / updates for m, t in med.items()}, "subnormals": counts, "val_mse": val,
            "updates_each": n, "run": run_dir, "updates_at_checkpoint": ck["trainer"].get("updates")}


# ------------------------------------------------------------------ issue 38: the composed update

UPDATE_VARIANTS = ("previous", "group norm", "today", "today, NCHW", "compiled", "direct")


def _train_step(kind, f, u, data, lam=1e-4):
    """One training update as core.trainer.fit runs it for train.py's predictor stage: the step's loss
    (composed_mse), backward, Adam, zero_grad. kind: `previous` (f through the UNet module, eager, the per-tensor
    Adam: the implementation before issue 38), `group norm` (FrozenUNet channels last with torch's group norm and
    the per-tensor Adam: the step of 2026-12-07), `today` (what train.py runs now: FrozenUNet channels last, its
    instance norm in C (instance_norm.py), fused Adam), `today, NCHW`, `compiled` (today's step under
    torch.compile: forward and backward; dropout masks from torch's own generator, fallback_random), `direct` (the
    MLP alone, no penalty, fused Adam: the CE-like step)."""
    font, char, y = data
    if kind == "direct":
        model, lam = f, 0.0
    elif kind == "previous":
        model = Composed(f, u)
    else:
        model = Composed(f, FrozenUNet(u, channels_last=kind != "today, NCHW"))
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4, betas=(0.5, 0.999),
                           fused=kind not in ("previous", "group norm"))
    penalized = nonbias_params(f)

    def loss_of(font, char, y):
        return composed_mse(model(font, char), y, penalized, lam)[0]
    if kind == "compiled":
        import torch._inductor.config as inductor
        inductor.fallback_random = True  # eager's dropout masks: the same numbers at a seed
        loss_of = torch.compile(loss_of)

    def step():
        with instance_norm_off() if kind == "group norm" else contextlib.nullcontext():
            loss = loss_of(font, char, y)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


@contextlib.contextmanager
def instance_norm_off():
    """FrozenUNet with torch's group norm (as where instance_norm.py's kernel cannot be built)."""
    saved = instance_norm._LIB[:]
    instance_norm._LIB[:] = [None]
    try:
        yield
    finally:
        instance_norm._LIB[:] = saved


def _update_data(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 100, (batch,), generator=g), torch.randint(0, 62, (batch,), generator=g),
            torch.rand(batch, 1, 32, 32, generator=g) * 2 - 1)


def bench_update(width=16, batch=256, reps=15, warmup=3, compile_step=False):
    """The composed update at `width`, `batch`, float32 (synthetic glyph tensors of the fonts' shape), today's
    against the previous implementation and the Direct step, interleaved: {"s": {variant: median s}, "flops":
    {variant: counted FLOPs per update}, "peak": sgemm FLOP/s measured now, "compile_s": ...}."""
    import copy
    torch.manual_seed(0)
    data = _update_data(batch)
    f0, u0 = MLPGenerator(dropout=0.1), freeze(UNet(width))
    kinds = [k for k in UPDATE_VARIANTS if compile_step or k != "compiled"]
    steps, compile_s = {}, None
    for k in kinds:
        f = copy.deepcopy(f0) if k != "direct" else MLPGenerator()
        steps[k] = _train_step(k, f, copy.deepcopy(u0), data)
        if k == "compiled":
            t = time.perf_counter()
            steps[k]()
            compile_s = time.perf_counter() - t
    med = interleaved(steps, reps, warmup)
    f_flops = 3 * forward_flops(f0, *data[:2]) * batch
    u_flops = 2 * forward_flops(u0, data[2]) * batch  # forward + input-gradient backward (no weight gradients)
    flops = {k: f_flops + (0 if k == "direct" else u_flops) for k in kinds}
    return {"s": med, "flops": flops, "peak": measure_gemm_flops("cpu"), "best_peak": gemm_peak_flops("cpu"),
            "compile_s": compile_s, "width": width, "batch": batch, "threads": torch.get_num_threads()}


def profile_update(width=16, batch=256, kinds=("previous", "today", "direct"), n=5, rows=15):
    """torch.profiler of `n` updates of each step: the top ops by self time, the host time no op covers (the
    gaps between ops of the step, Python included) and the host syncs (aten::item / _local_scalar_dense: a
    value read back, a sync on a GPU) per update. Returns {kind: (table, gap_s, syncs)}."""
    import copy

    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    data = _update_data(batch)
    f0, u0 = MLPGenerator(dropout=0.1), freeze(UNet(width))
    out = {}
    for k in kinds:
        step = _train_step(k, copy.deepcopy(f0) if k != "direct" else MLPGenerator(), copy.deepcopy(u0), data)
        for _ in range(2):
            step()
        t = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(n):
                step()
        wall = time.perf_counter() - t
        events = prof.key_averages()
        syncs = sum(e.count for e in events if e.key in ("aten::item", "aten::_local_scalar_dense"))
        top = [e for e in prof.events() if e.cpu_parent is None]
        covered = sum(e.cpu_time_total for e in top) / 1e6
        out[k] = (events.table(sort_by="self_cpu_time_total", row_limit=rows), max(wall - covered, 0.0) / n,
                  syncs / n)
    return out


def curve_check(workdir, fonts=None, updates=120, width=16, seed=0):
    """Validation curves of a short real Composed run at a fixed seed through the previous implementation (the
    UNet module, the per-tensor Adam) and today's (FrozenUNet, instance norm in C, fused Adam), same data, seed
    and settings: a denoiser of width `width` (smoke budget), then Composed at 500 labels, batch 256, `updates`
    updates (2 per epoch). Returns {"previous": [val_mse per epoch], "today": [...], "max_rel": the largest
    relative difference, "fonts": the dataset used}."""
    import json
    import os
    import sys

    from composed_ft.imggen import train
    from composed_ft.imggen.__main__ import parse
    if fonts is None:
        fonts = "data/fonts/fonts32.npz"
        if not os.path.exists(fonts):
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
            from conftest import make_synthetic_fonts
            fonts = make_synthetic_fonts(os.path.join(workdir, "fonts32.npz"))
    den = os.path.join(workdir, "denoiser")
    train.denoise(parse(["denoise", "--preset", "smoke", "--data", fonts, "--run-dir", den, "--device", "cpu",
                         "--unet-width", str(width), "--seed", str(seed)]))
    curves, real, real_adam = {}, train.FrozenUNet, train._adam
    for name in ("previous", "today"):
        run = os.path.join(workdir, name)
        train.FrozenUNet = (lambda u, channels_last=True: u) if name == "previous" else real
        train._adam = (lambda params, cfg, device: torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
                       ) if name == "previous" else real_adam
        try:
            train.train_predictor(parse(["train", "--preset", "cpu", "--data", fonts, "--run-dir", run, "--method",
                                         "composed", "--denoiser", den, "--n-train", "500", "--max-update",
                                         str(updates), "--device", "cpu", "--seed", str(seed)]))
        finally:
            train.FrozenUNet, train._adam = real, real_adam
        rows = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
        curves[name] = [r["val_mse"] for r in rows if "epoch" in r]
    a, b = curves["previous"], curves["today"]
    curves["max_rel"] = max(abs(x - y) / abs(x) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")
    curves["fonts"] = fonts
    return curves


def update_report(r, curve=None, profiles=None):
    """The imggen section's lines for issue 38: the table, the targets' pass/fail lines, the profile."""
    s, fl, peak = r["s"], r["flops"], max(r["peak"], r["best_peak"])
    lines = [f"composed update, U-Net width {r['width']}, batch {r['batch']}, float32, {r['threads']} threads, "
             "synthetic glyph tensors of the fonts' shape (median of interleaved reps, one process)", "",
             "| step | s/update | vs previous | counted GFLOP | vs Direct: time / FLOPs | GFLOP/s | MFU |",
             "|---|---|---|---|---|---|---|"]
    names = {"previous": "Composed, previous (the UNet module, eager)",
             "group norm": "Composed, FrozenUNet channels last, torch's group norm, per-tensor Adam (2026-12-07)",
             "today": "Composed, today (FrozenUNet channels last, instance norm in C, fused Adam)",
             "today, NCHW": "Composed, today but NCHW",
             "compiled": f"Composed, today under torch.compile (compile {r['compile_s'] or 0:.0f} s)",
             "direct": "Direct (the MLP alone)"}
    for k, t in s.items():
        lines.append(f"| {names[k]} | {t:.4f} | {s['previous'] / t:.2f}x | {fl[k] / 1e9:.2f} | "
                     f"{t / s['direct']:.2f}x / {fl[k] / fl['direct']:.2f}x | {fl[k] / t / 1e9:.1f} | "
                     f"{fl[k] / t / peak:.2f} |")
    lines += ["", f"MFU against the sgemm peak: {peak / 1e9:.1f} GFLOP/s (measured now {r['peak'] / 1e9:.1f}, "
              f"best recorded on this machine {r['best_peak'] / 1e9:.1f}); FLOPs counted from the layers "
              "(f: forward + backward; the frozen U-Net: forward + input gradient, the output block as the "
              "authors' full-resolution conv)", ""]
    speed = s["previous"] / s["today"]
    mfu = fl["today"] / s["today"] / peak
    lines.append(f"- {'PASS' if speed >= 2 else 'FAIL'}: today's update {speed:.2f}x faster than the previous "
                 "(target ≥ 2x)")
    lines.append(f"- {'PASS' if mfu >= 0.4 else 'FAIL'}: MFU {mfu:.2f} (target ≥ 0.4)")
    if curve is not None:
        ok = curve["max_rel"] < 1e-3
        lines.append(f"- {'PASS' if ok else 'FAIL'}: validation curve, previous vs today, {len(curve['today'])} "
                     f"epochs of a Composed run at seed 0: largest relative difference {curve['max_rel']:.1e} "
                     f"(target: float rounding, < 1e-3; final val MSE {curve['previous'][-1]:.6f} / "
                     f"{curve['today'][-1]:.6f}; data {curve['fonts']})")
    if profiles:
        for k, (table, gap, syncs) in profiles.items():
            lines += ["", f"torch.profiler, {names[k]}: host time outside any op {1000 * gap:.1f} ms/update, "
                      f"{syncs:g} host syncs/update", "", "```", table.strip(), "```"]
    return "\n".join(lines)


def _jobs_worker(kind, width, batch, updates, warmup=5):
    """One process's share of bench_jobs: `updates` timed updates of `kind`; prints the seconds."""
    torch.manual_seed(0)
    f = MLPGenerator(dropout=0.1) if kind != "direct" else MLPGenerator()
    step = _train_step(kind, f, freeze(UNet(width)), _update_data(batch))
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(updates):
        step()
    print(time.perf_counter() - t)


def bench_jobs(width=16, batch=256, updates=300, kinds=("today", "direct")):
    """Updates per second of the whole machine, per kind: one process at 2 threads, two processes at 1 thread
    each started together (the runner's JOBS=2), one process at 1 thread alone. {kind: {layout: updates/s}}."""
    import os
    import subprocess
    import sys

    def start(kind, threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        return subprocess.Popen([sys.executable, __file__, "--jobs-worker", kind, "--width", str(width), "--batch",
                                 str(batch), "--updates", str(updates)], env=env, stdout=subprocess.PIPE, text=True)

    def wall(procs):
        secs = []
        for p in procs:
            out, _ = p.communicate()
            if p.returncode:
                raise RuntimeError(f"bench_jobs worker failed (rc {p.returncode})")
            secs.append(float(out.strip().splitlines()[-1]))
        return secs
    res = {}
    for kind in kinds:
        one2 = wall([start(kind, 2)])[0]
        two1 = wall([start(kind, 1), start(kind, 1)])
        one1 = wall([start(kind, 1)])[0]
        res[kind] = {"1 process, 2 threads": updates / one2, "1 process, 1 thread": updates / one1,
                     "2 processes, 1 thread each": sum(updates / t for t in two1)}
    return res


def jobs_report(res, width, batch, updates):
    lines = [f"updates per second of the machine, U-Net width {width}, batch {batch}, float32, {updates} timed "
             "updates per process", "",
             "| step | 1 process, 2 threads | 2 processes, 1 thread each | ratio | 1 process, 1 thread |",
             "|---|---|---|---|---|"]
    for kind, r in res.items():
        a, b, c = r["1 process, 2 threads"], r["2 processes, 1 thread each"], r["1 process, 1 thread"]
        lines.append(f"| {'Composed' if kind == 'today' else 'Direct'} | {a:.2f} | {b:.2f} | {b / a:.2f}x | {c:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", action="store_true", help="one 2-thread process against two 1-thread ones (bench_jobs)")
    p.add_argument("--jobs-worker", choices=UPDATE_VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--denoiser-widths", type=int, nargs="+", help="time a denoiser update at these U-Net widths")
    p.add_argument("--output-blocks", action="store_true",
                   help="with --denoiser-widths: also time the earlier output blocks (authors, padded)")
    p.add_argument("--direct", action="store_true", help="also time the Direct step (the MLP alone)")
    p.add_argument("--stages", action="store_true",
                   help="time one update of each runner stage (denoiser, Direct, Composed at --width)")
    p.add_argument("--idle-direct-s", type=float, default=None,
                   help="with --stages: the Direct update's seconds on the idle machine, for idle estimates")
    p.add_argument("--speedups", action="store_true",
                   help="the composed update at --width against torch.compile of the U-Net and bf16 autocast")
    p.add_argument("--denormals", metavar="RUN_DIR",
                   help="time a predictor run's update at its last checkpoint with subnormal floats kept and flushed")
    p.add_argument("--updates", type=int, default=None,
                   help="with --denormals: updates per timed repetition (10); with --jobs: per process (300)")
    p.add_argument("--update", action="store_true",
                   help="issue 38: the composed update today vs the previous implementation and Direct (--width 16)")
    p.add_argument("--compile", action="store_true", help="with --update: also torch.compile of the whole step")
    p.add_argument("--profile", action="store_true", help="with --update: torch.profiler tables")
    p.add_argument("--curve", action="store_true", help="with --update: the validation-curve check (a short real run)")
    a = p.parse_args()
    if a.jobs_worker:
        _jobs_worker(a.jobs_worker, a.width, a.batch, a.updates)
    elif a.jobs:
        print(jobs_report(bench_jobs(a.width, a.batch, a.updates or 300), a.width, a.batch, a.updates or 300))
    elif a.update:
        import tempfile
        r = bench_update(a.width, a.batch, max(a.reps, 15), compile_step=a.compile)
        profiles = profile_update(a.width, a.batch) if a.profile else None
        with tempfile.TemporaryDirectory() as tmp:
            curve = curve_check(tmp, width=a.width) if a.curve else None
        print(update_report(r, curve, profiles))
    elif a.speedups:
        med, compile_s = bench_speedups(a.width, a.batch, max(a.reps, 15))
        print(f"composed update, batch {a.batch}, U-Net width {a.width}, {torch.get_num_threads()} threads "
              f"(median of interleaved reps; compile took {compile_s:.0f} s)")
        base = next(iter(med.values()))
        for k, t in med.items():
            print(f"  {k}: {t:.4f} s/update ({base / t:.2f}x)")
    elif a.denormals:
        r = bench_denormals(a.denormals, a.updates or 10, a.reps)
        t = r["s_per_update"]
        print(f"{r['run']} at update {r['updates_at_checkpoint']}: subnormal weights {r['subnormals']['weights']:,}, "
              f"subnormal Adam moments {r['subnormals']['Adam moments']:,}; {torch.get_num_threads()} threads")
        print(f"  keep:  {t['keep']:.3f} s/update\n  flush: {t['flush']:.3f} s/update "
              f"({t['keep'] / t['flush']:.2f}x faster)")
        print(f"  validation MSE after {r['updates_each']} updates from the checkpoint: "
              f"keep {r['val_mse']['keep']:.6f}, flush {r['val_mse']['flush']:.6f}")
    elif a.stages:
        import os
        med = bench_stages(a.width, a.batch, max(a.reps, 12))
        print(f"one update per stage, batch {a.batch}, U-Net width {a.width}, {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.1f} (median of interleaved reps)")
        scale = a.idle_direct_s / med["direct"] if a.idle_direct_s else None
        for k, t in med.items():
            idle = f", idle estimate {t * scale:.3f} s" if scale else ""
            print(f"  {k}: {t:.3f} s/update ({t / med['direct']:.2f}x Direct){idle}")
    elif a.denoiser_widths:
        blocks = OUTPUT_BLOCKS if a.output_blocks else ("subpixel",)
        med = bench_denoiser(a.denoiser_widths, a.batch, max(a.reps, 12), blocks=blocks)
        print(f"denoiser update, batch {a.batch}, {torch.get_num_threads()} threads (median of interleaved reps)")
        k0 = next(iter(med))
        for k, t in med.items():
            name = f"width {k}" if not isinstance(k, tuple) else f"width {k[0]}, output block {k[1]}"
            print(f"  {name}: {1000 * t:.0f} ms/update ({t / med[k0]:.2f}x the first)")
    else:
        print(report(bench(a.batch, a.width, a.reps, direct=a.direct)))
