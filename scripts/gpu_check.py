"""The paper preset on one CUDA GPU: measured throughput per stage and the projected wall time of each paper
table, written to results/GPU.md. Run through scripts/gpu_check.sh (which says so in one line and exits 0
where there is no CUDA device); about 6 minutes on one H200-class GPU, 8 at most.

    bash scripts/gpu_check.sh [--out results/GPU.md] [--work DIR] [--budget-s 300]

1. the device: name, memory, CPU cores, torch and CUDA versions; a bf16 matrix product's rate;
2. CUDA-graph decoding: a paper-size SansType model's greedy outputs with and without the captured step
   (they must agree) and the seconds per decoding step of each;
3. every paper-preset stage for a bounded number of updates: scripts/paper_dry_run.py --profile measure
   (SansType, then imggen, then SPoC; an experiment still to start after --budget-s seconds is skipped
   and said to be);
4. per stage the measured seconds per update once warm, per validation pass, per evaluated example, and
   the peak GPU memory; times the work of the full stage at the paper preset (scripts/paper_plan.py:
   counted on the data here, or results/paper_plan.json where a data set is missing), the projected
   wall time of each table (composed_ft/core/projection.py).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

from composed_ft.core import projection  # noqa: E402

TABLES = {"imggen": "imggen main", "sanstype": "SansType main", "spoc": "SPoC main"}
# which dry-run run measures each planned stage: (experiment, planned run) -> measured run
MEASURED_AS = {("imggen", "main/direct_strong-n2500-s0"): "main/direct_strong-n2500-s0"}


def device_info():
    import torch
    props = torch.cuda.get_device_properties(0)
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    tflops = 10 * 2 * n ** 3 / (time.perf_counter() - t) / 1e12
    return {"gpu": props.name, "memory_gib": props.total_memory / 2 ** 30, "cpu_cores": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "bf16_tflops": tflops, "commit": _commit()}


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def graph_check(device="cuda", rows=64, steps=200):
    """Greedy outputs of a paper-size SansType model with the captured step vs the same step uncaptured, and
    the seconds per decoding step of each (random weights, random sources: every row runs to the limit)."""
    import torch

    from composed_ft.code import decode
    from composed_ft.code.model import build_model
    from composed_ft.code.presets import ARCHS
    torch.manual_seed(0)
    a = ARCHS["paper"]
    m = build_model(600, a["layers"], a["d_model"], a["ffn"], a["heads"], max_positions=1024).to(device).eval()
    g = torch.Generator().manual_seed(1)
    srcs = [torch.randint(4, 600, (90,), generator=g).tolist() + [3] for _ in range(rows)]
    out, secs = {}, {}
    for cache in ("static", "fast"):
        decode.generate(m, srcs[:2], max_len=8, cache=cache, device=device)  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        out[cache], _ = decode.generate(m, srcs, max_len=steps, cache=cache, device=device)
        torch.cuda.synchronize()
        secs[cache] = (time.perf_counter() - t) / steps
    agree = sum(x == y for x, y in zip(out["static"], out["fast"])) / rows
    return {"rows": rows, "steps": steps, "agree": agree, "step_s_graph": secs["fast"], "step_s_eager": secs["static"],
            "graphs": decode.cuda_graphs_enabled(), "failure": decode._GRAPHS["failed"]}


# ---------------------------------------------------------------- measurements and plans -> projection

def measurements(dry):
    """{(experiment, run): the per-unit costs of projection.stage_seconds} from a dry run's records. A stage's
    fixed seconds: its wall time less what the measured units account for, plus its share of its runner's
    process start-ups (the runner's wall time less its runs' wall times, per process)."""
    startup = {}
    for exp, info in dry["experiments"].items():
        runner = {k: v for k, v in (info.get("commands") or {}).items() if k.endswith(".sh")}
        runs = [r for r in dry["records"] if r["experiment"] == exp]
        if runner and info.get("processes"):
            startup[exp] = max(0.0, (sum(runner.values()) - sum(r["wall_s"] or 0 for r in runs)) / info["processes"])
    out = {}
    for r in dry["records"]:
        epochs = r.get("epochs_run") or 1
        save = (r.get("save_s") or 0.0) / epochs
        per_epoch = (r.get("epoch_extra_s") or 0.0) + save
        fixed = ((r.get("wall_s") or 0.0) - (r.get("updates") or 0) * (r.get("update_s") or 0.0) - epochs * per_epoch
                 - (r.get("eval_s") or 0.0))
        out[(r["experiment"], r["run"])] = {
            "update_s": r.get("update_s"), "val_s": r.get("val_s"), "val_n": r.get("val_n"),
            "setup_s": max((r.get("epoch_extra_s") or 0.0) - (r.get("val_s") or 0.0), 0.0),
            "examples": r.get("examples"), "save_s": save, "eval_s": r.get("eval_s"), "eval_n": r.get("eval_n"),
            "fixed_s": max(fixed, 0.0) + startup.get(r["experiment"], 0.0), "cuda_peak_gib": r.get("cuda_peak_gib")}
    gold = (dry["experiments"].get("spoc") or {}).get("commands", {}).get("gold-ceiling")
    if gold:
        n = 2 * dry["caps"]["spoc"]["n_eval"]  # TestW and TestP
        out[("spoc", "gold_ceiling")] = {"eval_s": gold, "eval_n": n, "fixed_s": 0.0}
    return out


def project(dry, plan):
    """{table: [(stage label, plan, seconds)]} for every planned stage that was measured; and the planned
    stages that were not."""
    meas = measurements(dry)
    tables, missing = {}, []
    for st in plan["stages"]:
        key = (st["table"], MEASURED_AS.get((st["table"], st["run"]), st["run"]))
        if key not in meas:
            missing.append(f"{TABLES[st['table']]}: {st['run']}")
            continue
        label = "denoiser" if st["stage"] == "denoise" else st["run"].split("/")[-1].removesuffix("-s0")
        tables.setdefault(TABLES[st["table"]], []).append((label, st, projection.stage_seconds(meas[key], st)))
    return tables, missing


def render(info, graphs, dry, plan, tables, missing):
    meas = measurements(dry)
    lines = ["# The paper preset on one GPU: measured throughput, projected wall time", "",
             f"Written by `bash scripts/gpu_check.sh` on {time.strftime('%Y-%m-%d %H:%M')}, commit {info['commit']}: "
             f"{info['gpu']} ({info['memory_gib']:.0f} GiB), {info['cpu_cores']} CPU cores, torch {info['torch']}, "
             f"CUDA {info['cuda']}; a bf16 8192^3 matrix product ran at {info['bf16_tflops']:.0f} TFLOP/s. "
             "Training steps under bf16 autocast with TF32 matrix products (`--precision bf16`, the default).", ""]
    if graphs:
        lines += [f"CUDA-graph decoding: {'on' if graphs['graphs'] else 'OFF (' + str(graphs['failure']) + ')'}; "
                  f"greedy outputs of {graphs['rows']} rows x {graphs['steps']} steps (paper-size SansType model) "
                  f"agree with the uncaptured step for {100 * graphs['agree']:.0f}% of rows; "
                  f"{1e3 * graphs['step_s_graph']:.2f} ms per step captured vs {1e3 * graphs['step_s_eager']:.2f} ms "
                  "uncaptured.", ""]
    lines += ["## Measured per stage", "",
              f"`scripts/paper_dry_run.py --profile {dry.get('profile', 'measure')}`: every stage at the paper "
              "preset's sizes for a bounded "
              "number of updates (caps: " + ", ".join(f"{e} {c}" for e, c in dry["caps"].items()) + "); "
              "seconds per update once warm (the first one or two updates of an epoch left out), median over "
              "epochs.", "",
              "| experiment | run | updates timed | s / update | updates / s | validation s / epoch (examples) | "
              "evaluation s / example | peak GPU memory |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in dry["records"]:
        m = meas[(r["experiment"], r["run"])]
        u = r.get("update_s")
        ev = (m["eval_s"] / m["eval_n"]) if m.get("eval_s") and m.get("eval_n") else None
        peak = m.get("cuda_peak_gib")
        cells = [f"{u:.4f}", f"{1 / u:.1f}"] if u else ["–", "–"]
        cells += [f"{r.get('val_s') or 0:.2f} ({m.get('val_n') or 'all'})", "–" if ev is None else f"{ev:.3f}",
                  f"{peak:.1f} GiB" if peak else "–"]
        lines.append(f"| {r['experiment']} | {r['run']} | {r['updates']} | " + " | ".join(cells) + " |")
    for exp, e in dry["experiments"].items():
        lines.append(f"\n{exp}: {e.get('note')}" + (f"; {e['wall_s']:.0f} s" if e.get("wall_s") else ""))
    lines += ["", "## Projected wall time of each paper table (one seed)", "",
              "Per stage: measured seconds per update x the stage's updates at the paper preset, per-epoch costs "
              "(validation scaled to the full validation set, checkpoints) x its epochs, evaluation scaled to "
              "every evaluated example, and what does not grow (process start, data loading); work counted by "
              f"scripts/paper_plan.py ({', '.join(f'{k}: {v}' for k, v in plan['sources'].items())}).", "",
              projection.projection_table(tables), ""]
    for table, rows in tables.items():
        lines.append(f"- {table}: bounded by " + ", ".join(projection.bound([(s, sec) for s, _, sec in rows])) + ".")
    if missing:
        lines += ["", "Not measured (no projection): " + "; ".join(missing) + "."]
    lines += ["", "Composed's updates were timed from an f a few updates old, whose samples run to the length limit: "
              "its projection is an upper bound (a trained f's samples end near the gold length). Evaluation and "
              "validation are scaled linearly in their examples, also an upper bound on a GPU. Data building "
              "(make-sanstype, make-spoc, the fonts) runs on the CPU once and is not in these totals.", ""]
    return "\n".join(lines)


def load_plan(work):
    """The paper plan counted on the data here; what is missing comes from results/paper_plan.json."""
    import paper_plan
    fonts = os.path.join(REPO, "data/fonts/fonts32.npz")
    sanstype = os.path.join(REPO, "data/sanstype-paper")
    spoc = os.path.join(work, "spoc-data")
    here = paper_plan.build(fonts if os.path.exists(fonts) else None,
                            sanstype if os.path.exists(sanstype) else None,
                            spoc if os.path.exists(os.path.join(spoc, "dataset.json")) else None)
    if "spoc" in here["sources"]:  # a temporary directory: name what it is instead
        here["sources"]["spoc"]["data"] = "the dry run's make-spoc data set (every train program)"
    committed = os.path.join(REPO, "results", "paper_plan.json")
    if os.path.exists(committed):
        with open(committed) as fh:
            saved = json.load(fh)
        for table, source in saved["sources"].items():
            if table not in here["sources"]:
                here["stages"] += [s for s in saved["stages"] if s["table"] == table]
                here["sources"][table] = dict(source, counted="results/paper_plan.json")
    return here


def main(argv=None):
    import torch
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(REPO, "results", "GPU.md"))
    p.add_argument("--work", default=None, help="data copies and run directories (default: a temporary directory)")
    p.add_argument("--budget-s", type=float, default=300,
                   help="start no further experiment after this many seconds of measuring (default 300)")
    p.add_argument("--experiments", nargs="*", default=["sanstype", "imggen", "spoc"])
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing measured")
        return 0
    import paper_dry_run
    work = args.work or tempfile.mkdtemp(prefix="gpu_check_")
    info = device_info()
    print(f"gpu_check: {info['gpu']}, {info['memory_gib']:.0f} GiB, bf16 {info['bf16_tflops']:.0f} TFLOP/s", flush=True)
    graphs = graph_check()
    print(f"gpu_check: CUDA graphs {graphs}", flush=True)
    rc = paper_dry_run.main(["--work", work, "--device", "cuda", "--profile", "measure", "--budget-s",
                             str(args.budget_s), "--experiments", *args.experiments])
    with open(os.path.join(work, "dry_run.json")) as fh:
        dry = json.load(fh)
    plan = load_plan(work)
    tables, missing = project(dry, plan)
    text = render(info, graphs, dry, plan, tables, missing)
    if dry.get("problems"):
        text += "\n**Problems:** " + "; ".join(dry["problems"]) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(text)
    print(text)
    print(f"gpu_check: wrote {args.out} (runs in {work})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
