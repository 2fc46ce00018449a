"""The paper tables' wall time on one H200-class GPU, projected without one: counted work x modeled cost.

    python scripts/paper_projection.py [--plan results/paper_plan.json] [--out results/paper_projection.md]

No GPU was lent to the session that wrote this; scripts/gpu_check.sh replaces every modeled number below by
a measured one on a machine that has one. The model (stated in the output, with its constants):

  work      scripts/paper_plan.py: updates, epochs, validation and evaluated examples per stage, counted on
            the data; Composed's sampling passes as long as the longest gold target of each update (a
            trained f's samples end near the gold length; the length limit is the upper bound, shown too).
  host      the seconds the host spends issuing one unit of work (an update, a decoding step, a validation
            batch), measured here as process CPU time of the same code at the same depth (layers, batch
            structure) with tiny widths, so that the arithmetic is negligible and what remains is Python,
            dispatch and allocation; plus LAUNCH_S per kernel a GPU launch adds.
  device    per unit: its kernels x KERNEL_S (the least a kernel takes, launch gap included) + its FLOPs
            (counted with torch's FLOP counter at the paper's sizes) / the bf16 rate BF16_FLOPS.
  a unit    costs max(host, device) where nothing waits for the device (a training update, the design of
            this issue: no synchronization inside it), host + device where it does (imggen's blur reads
            its largest radius back every step); a captured CUDA-graph decoding step costs the host only
            its few uncaptured ops, and the device its kernels.
  judge     SansType programs at the judge's measured rate for mixed outputs (results/BENCH.md: 13.76
            programs/s on 2 cores, 76% compile errors), SPoC programs at 0.78 core-seconds each (code/README:
            the gold ceiling of 200 programs in 1.3 min on 2 cores), on JUDGE_CORES cores, beside decoding.
  the rest  a checkpoint (weights + Adam moments) per epoch at CKPT_BYTES_S, a process start of START_S per
            stage.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from composed_ft.core import projection  # noqa: E402

LAUNCH_S = 2e-6        # host: a CUDA kernel launch beyond what the same op costs on a CPU
KERNEL_S = 2.5e-6      # device: the least one kernel takes, launch gap included (back-to-back small kernels)
GRAPH_KERNEL_S = 1.5e-6  # device: the same inside a replayed CUDA graph (no launch gaps)
BF16_FLOPS = 200e12    # a quarter of the measured 790 TFLOP/s bf16 peak (KINDS.md): small matrices (d 256)
JUDGE_CORES = 16
SANSTYPE_JUDGE_CORE_S = 2 / 13.76
SPOC_JUDGE_CORE_S = 2 * 78 / 200
CKPT_BYTES_S = 1e9
START_S = 15.0
META = {"view", "_unsafe_view", "t", "transpose", "expand", "permute", "slice", "select", "unsqueeze", "squeeze",
        "as_strided", "alias", "detach", "_reshape_alias", "split", "split_with_sizes", "unbind", "reshape", "empty",
        "empty_like", "empty_strided", "lift_fresh", "_local_scalar_dense", "is_same_size", "sym_size", "unfold",
        "view_as", "expand_as", "contiguous", "_has_compatible_shallow_copy_type", "clone"}


class _Count(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = self.kernels = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        self.kernels += func.overloadpacket.__name__ not in META
        return func(*args, **(kwargs or {}))


def host_cost(fn, reps=5):
    """(process CPU seconds per call, dispatched ops, kernel ops) of fn()."""
    fn()
    with _Count() as c:
        fn()
    best = math.inf
    for _ in range(reps):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best, c.ops, c.kernels


def flops(fn):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def unit(host_s, kernels, flop, sync=False, graph=False):
    """Seconds of one unit on the GPU (see the module docstring)."""
    device = kernels * (GRAPH_KERNEL_S if graph else KERNEL_S) + flop / BF16_FLOPS
    host = host_s + (0 if graph else kernels * LAUNCH_S)
    return host + device if sync else max(host, device)


# ---------------------------------------------------------------- seq2seq units

def _model(layers, d, heads, vocab, positions=1024):
    from composed_ft.code.model import build_model
    torch.manual_seed(0)
    return build_model(vocab, layers, d, 4 * d, heads, dropout=0.1, max_positions=positions)


def _pairs(n, src_len, tgt_len):
    return [[5] * (src_len - 1) + [3] for _ in range(n)], [[6] * (tgt_len - 1) + [3] for _ in range(n)]


def seq2seq_units(layers, heads, vocab, rows, src_len, tgt_len, sample_rows):
    """Modeled seconds of the units of a seq2seq stage at the paper's width (d 256): a merged training
    update of `rows` pairs, a Composed update's non-sampling part, a validation batch of 16 x 4,000 tokens,
    a decoding step (captured) of `sample_rows` rows."""
    from types import SimpleNamespace

    from composed_ft.code import decode
    from composed_ft.code.reinforce import composed_loss, composed_terms
    from composed_ft.code.training import Batch, ce_step
    out = {}
    cfg = SimpleNamespace(update_freq=4, label_smoothing_at=lambda e: 0.1)
    parts = [list(range(k, k + 2)) for k in range(0, 8, 2)]

    def update_fn(m):
        srcs, tgts = _pairs(8, 6, 6)
        step = ce_step(m, lambda e: srcs, tgts, cfg, torch.device("cpu"))
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
        flat = list(range(8))

        def run():
            loss, _, _ = step(Batch(1, flat, torch.tensor(flat), tuple(parts), True))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run
    host, _, kern = host_cost(update_fn(_model(layers, 8, 2, vocab)))
    m = _model(layers, 256, heads, vocab)
    srcs, tgts = _pairs(2, src_len, tgt_len)

    def fwd_bwd():
        from composed_ft.code.batching import collate
        from composed_ft.code.losses import batch_nll
        loss, _ = batch_nll(m, collate(srcs, tgts, torch.device("cpu")), 0.1)
        loss.sum().backward()
    f2 = flops(fwd_bwd) + 12 * sum(p.numel() for p in m.parameters()) / max(rows, 1)  # + AdamW's, per pair
    out["update"] = unit(host, kern, f2 * rows / 2)
    out["update_detail"] = dict(host_s=host + kern * LAUNCH_S, kernels=kern, gflop=f2 * rows / 2 / 1e9)
    # Composed without sampling: Π's NLL of y given ŷ (forward) and f's CE and log p over [y; ŷ] (forward, backward)
    small_f, small_pi = _model(layers, 8, 2, vocab), _model(layers, 8, 2, vocab).requires_grad_(False).eval()
    s8, t8 = _pairs(8, 6, 6)

    def comp_small():
        per, _ = composed_terms(small_f, small_pi, s8, t8, yhats=t8, parts=[2, 2, 2, 2])
        (per.sum() / sum(map(len, t8))).backward()
    host_c, _, kern_c = host_cost(comp_small)
    pi = _model(layers, 256, heads, vocab).requires_grad_(False).eval()

    def comp_big():
        loss, _, _ = composed_loss(m, pi, srcs, tgts, yhats=tgts)
        loss.backward()
    fc = flops(comp_big)
    out["compose_rest"] = unit(host_c, kern_c, fc * rows / 2, sync=True)  # its logged floats wait for the device
    # a validation batch: forward of 16 x 4,000 tokens
    host_v, _, kern_v = host_cost(lambda: _val(_model(layers, 8, 2, vocab), 4, 6))
    fv = flops(lambda: _val(m, 2, max(src_len, tgt_len)))
    out["val_batch"] = unit(host_v, kern_v, fv * (64000 / max(src_len, tgt_len)) / 2, sync=True)
    # a decoding step: captured, so the host issues only what _search does around the replay
    sm = _model(layers, 8, 2, vocab).eval()
    src = torch.full((4, 6), 5)

    def search(n):
        return lambda: decode._search(sm, src, torch.ones_like(src), n, True, 1.0, "static")
    h20, o20, k20 = host_cost(search(20))
    h60, o60, k60 = host_cost(search(60))
    inc = decode._Incremental(sm, torch.zeros(4, 6, 8), torch.ones(4, 6), 8, static=True)
    _, _, k_graph = host_cost(inc._static_step)
    per_step_kernels = (k60 - k20) / 40
    host_outside = (h60 - h20) / 40 * (per_step_kernels - k_graph) / per_step_kernels + 10e-6  # + the replay
    big = decode._Incremental(m.eval(), torch.zeros(sample_rows, src_len, 256), torch.ones(sample_rows, src_len),
                              300, static=True)
    fd = flops(big._static_step)
    out["decode_step"] = max(host_outside + (per_step_kernels - k_graph) * LAUNCH_S,
                             k_graph * GRAPH_KERNEL_S + (per_step_kernels - k_graph) * KERNEL_S + fd / BF16_FLOPS * 2)
    out["decode_detail"] = dict(kernels_in_graph=k_graph, kernels_outside=per_step_kernels - k_graph,
                                host_outside_s=host_outside)
    out["params"] = sum(p.numel() for p in m.parameters())
    return out


def _val(m, n, length):
    from composed_ft.code.batching import collate
    from composed_ft.code.losses import batch_nll
    srcs, tgts = _pairs(n, length, length)
    with torch.no_grad():
        batch_nll(m, collate(srcs, tgts, torch.device("cpu")), 0.0)


# ---------------------------------------------------------------- imggen units

def imggen_units():
    from composed_ft.core.compose import Composed
    from composed_ft.imggen import perturbations
    from composed_ft.imggen.models import MLPGenerator, make_unet
    out = {}

    def den_fn(width, n):
        net = make_unet(width, 0.5, "authors")
        opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
        y = torch.rand(n, 1, 32, 32) * 2 - 1

        def run():
            x = perturbations.blur(y, 2.0)
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run
    host, _, kern = host_cost(den_fn(2, 2))
    fl = flops(den_fn(64, 2)) * 128
    out["denoise_update"] = unit(host, kern, fl, sync=True)  # gaussian_blur reads sigma.max() back every step

    def pred_fn(composed, n, width):  # width 2: tiny, f's hidden layers too; 64: the paper's, for its FLOPs
        hidden = (128, 256, 256, 512, 512, 1024) if width == 64 else (4,) * 6
        f = MLPGenerator(dropout=0.1, hidden=hidden, font_dim=100 if width == 64 else 4,
                         char_dim=62 if width == 64 else 4)
        model = Composed(f, make_unet(width, 0.5, "authors")) if composed else f
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4, fused=True)
        font, char, img = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), torch.zeros(n, 1, 32, 32)

        def run():
            loss = torch.nn.functional.mse_loss(model(font, char), img)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run
    for name, comp in (("direct", False), ("composed", True)):
        host, _, kern = host_cost(pred_fn(comp, 2, 2))
        fl = flops(pred_fn(comp, 2, 64)) * 128
        out[f"{name}_update"] = unit(host, kern, fl)
    return out


# ---------------------------------------------------------------- the projection

def model_stage(st, units, judge_core_s, decode_rows):
    """projection.stage_seconds' measurement of one planned stage, from the modeled units."""
    t = st["table"]
    if t == "imggen":
        key = "denoise_update" if st["stage"] == "denoise" else f"{st['stage']}_update"
        # validation: f and Π on 100 pairs, or Π on 1,000 glyphs; a checkpoint: the 4M-parameter U-Net (every
        # epoch) or f's 2.4M (best, and every 50 epochs); fixed: loading the glyphs, the test set's 3,600 pairs
        save = 0.05 if st["stage"] == "denoise" else 0.01
        return {"update_s": units["imggen"][key], "val_s": 0.002, "save_s": save, "fixed_s": START_S + 10}
    u = units[t]
    ckpt = 3 * 4 * u["params"] / CKPT_BYTES_S + 4 * u["params"] / CKPT_BYTES_S  # last (with Adam) + best
    # a validation pass in 64,000-token batches of pairs ~100 (SansType) or ~150 (SPoC) tokens long, padded
    val_batches = math.ceil(st["val_n"] * (100 if t == "sanstype" else 150) / 64000)
    meas = {"val_s": val_batches * u["val_batch"], "val_n": st["val_n"], "save_s": ckpt, "fixed_s": START_S}
    if st["stage"] == "gold-ceiling":
        return {"eval_s": st["eval_n"] * judge_core_s / JUDGE_CORES, "eval_n": st["eval_n"], "fixed_s": START_S}
    if st["stage"] == "compose":
        meas["update_s"] = st["sample_steps"] * u["decode_step"] + u["compose_rest"]
        meas["val_s"] += st["val_decode_steps"] * u["decode_step"] + 2 * val_batches * u["val_batch"]
    else:
        meas["update_s"] = u["update"]
    steps = st.get("val_decode_steps") or 200
    if st["stage"] == "denoise":  # Π's outputs on its validation (and train) programs
        meas.update(eval_s=2 * steps * u["decode_step"] * math.ceil(st["eval_n"] / decode_rows), eval_n=st["eval_n"])
    else:  # f and Π decode every split (4 SansType, 2 SPoC), the judge runs beside: the longer of the two
        dec = 2 * steps * u["decode_step"] * math.ceil(st["eval_n"] / decode_rows)
        meas.update(eval_s=max(dec, 2 * st["eval_n"] * judge_core_s / JUDGE_CORES), eval_n=st["eval_n"])
    return meas


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", default=os.path.join(REPO, "results", "paper_plan.json"))
    p.add_argument("--out", default=os.path.join(REPO, "results", "paper_projection.md"))
    p.add_argument("--units", default=None, help="the modeled units as JSON: read when it exists, else written")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with open(args.plan) as fh:
        plan = json.load(fh)
    by = {}
    for st in plan["stages"]:
        by.setdefault(st["table"], []).append(st)
    if args.units and os.path.exists(args.units):
        with open(args.units) as fh:
            units = json.load(fh)
    else:
        units = {"imggen": imggen_units()}
        # rows per update: the paper's 4 x 4,000-token batches of ~90-token SansType pairs, ~125-token SPoC ones
        units["sanstype"] = seq2seq_units(3, 2, 600, rows=4 * 4000 // 100, src_len=90, tgt_len=95, sample_rows=160)
        units["spoc"] = seq2seq_units(5, 8, 6000, rows=4 * 4000 // 150, src_len=120, tgt_len=125, sample_rows=100)
        if args.units:
            with open(args.units, "w") as fh:
                json.dump(units, fh, indent=1)
    judge = {"sanstype": SANSTYPE_JUDGE_CORE_S, "spoc": SPOC_JUDGE_CORE_S}
    rows_per_chunk = {"sanstype": 1000, "spoc": 200}
    tables, worst = {}, {}
    names = {"imggen": "imggen main", "sanstype": "SansType main", "spoc": "SPoC main"}
    for t, stages in by.items():
        rows, rows_worst = [], []
        for st in stages:
            meas = model_stage(st, units, judge.get(t), rows_per_chunk.get(t))
            label = "denoiser" if st["stage"] == "denoise" else st["run"].split("/")[-1].removesuffix("-s0")
            rows.append((label, st, projection.stage_seconds(meas, st)))
            if st["stage"] == "compose":  # samples to the length limit: 1.5 x the longest + 10
                limit = dict(st, sample_steps=1.5 * st["sample_steps"] + 10, val_decode_steps=1.5 * st[
                    "val_decode_steps"] + 10)
                rows_worst.append((label, projection.stage_seconds(model_stage(limit, units, judge.get(t),
                                                                               rows_per_chunk.get(t)), st)))
            else:
                rows_worst.append((label, rows[-1][2]))
        tables[names[t]] = rows
        worst[names[t]] = projection.table_seconds(rows_worst)["total_s"]
    lines = ["# The paper tables on one H200-class GPU: projected without one", "",
             f"Written by `python scripts/paper_projection.py` on {time.strftime('%Y-%m-%d %H:%M')} on this project's "
             "development machine (no GPU; the session that wrote it was lent none). A model, not a measurement: "
             "`bash scripts/gpu_check.sh` on a GPU measures each number below and writes results/GPU.md. The "
             "model and its constants: scripts/paper_projection.py's docstring and the list below.", "",
             projection.projection_table(tables), ""]
    for table, rows in tables.items():
        lines.append(f"- {table}: bounded by " + ", ".join(projection.bound([(s, sec) for s, _, sec in rows]))
                     + "; with Composed's samples at the length limit (its upper bound) "
                     + f"{projection.fmt_s(worst[table])}.")
    ss = units["sanstype"]
    lines += ["", "Modeled units (SansType's paper model; per merged update of 4 x 4,000-token batches):",
              f"- a training update: host {1e3 * ss['update_detail']['host_s']:.1f} ms "
              f"({ss['update_detail']['kernels']} kernels), device {ss['update_detail']['gflop']:.0f} GFLOP; "
              f"modeled {1e3 * ss['update']:.1f} ms",
              f"- a decoding step (captured): {ss['decode_detail']['kernels_in_graph']} kernels in the graph, "
              f"{ss['decode_detail']['kernels_outside']:.0f} outside; modeled {1e3 * ss['decode_step']:.3f} ms",
              f"- Composed beyond sampling (Π's NLL, CE and log p over [y; ŷ], backward): "
              f"{1e3 * ss['compose_rest']:.1f} ms; a validation batch of 64,000 tokens {1e3 * ss['val_batch']:.1f} ms",
              f"- imggen: a denoiser update {1e3 * units['imggen']['denoise_update']:.1f} ms, Direct "
              f"{1e3 * units['imggen']['direct_update']:.2f} ms, Composed "
              f"{1e3 * units['imggen']['composed_update']:.2f} ms",
              "", "Constants: " + ", ".join(f"{k} {v:g}" for k, v in (
                  ("LAUNCH_S", LAUNCH_S), ("KERNEL_S", KERNEL_S), ("GRAPH_KERNEL_S", GRAPH_KERNEL_S),
                  ("BF16_FLOPS", BF16_FLOPS), ("JUDGE_CORES", JUDGE_CORES), ("CKPT_BYTES_S", CKPT_BYTES_S),
                  ("START_S", START_S))) + f"; work from {os.path.relpath(args.plan, REPO)} "
              f"({', '.join(f'{k}: {v}' for k, v in plan['sources'].items())}).", ""]
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
