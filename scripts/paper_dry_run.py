"""Every stage of every experiment at the `paper` preset's sizes, capped: a few updates each and a few
examples evaluated, through the runners themselves (PRESET=paper, their STAGE_FLAGS variable adds the caps),
so through the very command lines a paper run uses, on the real data.

    python scripts/paper_dry_run.py --work /tmp/dry            # the CPU dry run (tests/test_paper_dry_run.py)
    python scripts/paper_dry_run.py --profile measure --device cuda --work W   # what scripts/gpu_check.sh runs

What runs (PRESET=paper, one seed):
  imggen    imggen/runner.sh TARGETS=main: the blur-2 U-Net (width 64), Direct, Composed and the strongest
            Direct at 2,500 and 500 labels (batch 256); each evaluated on the whole test set
  sanstype  code/runner.sh TARGETS="main bt": denoiser, Pretrained, Direct, Composed, the reverse model,
            backtranslation and Composed from it (3+3 layers, d 256, batches of 4,000 tokens x 4);
            then `evaluate` of the Composed run
  spoc      code/runner_spoc.sh: make-spoc, gold ceiling, denoiser, Direct, Pretrained, Composed (5+5 layers,
            d 256, 8 heads, BPE 10,000 -- as many pieces as SPoC's train programs yield); then `evaluate`
Data: data/fonts/fonts32.npz (else a small stand-in rendered from matplotlib's fonts, said so), a copy of
data/sanstype-paper (else make-sanstype from ../shared/data/sanstype-1000a with fewer generated programs),
SPoC from ../shared/data/spoc (or data/spoc) through make-spoc with every train program (the vocabulary is
trained on them) and capped validation and unlabeled programs (profile's n_val, n_unlabeled, copies).

Writes WORK/dry_run.json: per run directory its experiment, stage, model sizes, updates, wall time and the
timings the projection uses (seconds per update once warm, per validation pass, per evaluated example);
exits 1 when a stage's run is missing or not at the paper preset's sizes.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))

# caps per experiment: updates per stage (--max-update), examples evaluated per split (--n-eval), validation
# examples (--n-valid, 0: all), generation limit (--max-len, 0: the stage's rule), programs labeled by
# backtranslation, and SPoC's make-spoc sizes
PROFILES = {
    # the CPU dry run: every stage runs, at paper size, in minutes
    "dry": {"imggen": dict(max_update=2),
            "sanstype": dict(max_update=2, n_eval=2, n_valid=16, max_len=0, bt_n_unlabeled=8),
            "spoc": dict(max_update=2, n_eval=2, n_valid=8, max_len=64, n_val=8, n_unlabeled=16, copies=1)},
    # a GPU's measurement: enough updates to time them once warm, whole validation passes
    "measure": {"imggen": dict(max_update=200),
                "sanstype": dict(max_update=24, n_eval=64, n_valid=0, max_len=0, bt_n_unlabeled=512),
                "spoc": dict(max_update=12, n_eval=16, n_valid=0, max_len=0, n_val=48, n_unlabeled=96, copies=2)},
}
EXPERIMENTS = ("imggen", "sanstype", "spoc")


def log(msg):
    print(f"[paper_dry_run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run(cmd, env, what):
    t = time.time()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{what} failed (rc {p.returncode}): {' '.join(cmd)}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return time.time() - t


def _env(device, **extra):
    env = dict(os.environ, PY=sys.executable, PRESET="paper", DEVICE=device, SEEDS="0")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _stage_flags(caps, keys=("max_update", "n_eval", "n_valid", "max_len")):
    flags = []
    for k in keys:
        if k in caps and (caps[k] or k in ("n_valid",)):
            flags += [f"--{k.replace('_', '-')}", str(caps[k])]
    return " ".join(flags)


# ---------------------------------------------------------------- data

def fonts_data(work, fonts):
    if fonts and os.path.exists(fonts):
        return fonts, "real"
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from conftest import make_synthetic_fonts  # 130 fonts rendered from matplotlib's DejaVu faces
    out = os.path.join(work, "fonts32.npz")
    if not os.path.exists(out):
        make_synthetic_fonts(out)
    return out, "stand-in: 130 fonts rendered from matplotlib's faces (data/fonts/fonts32.npz missing)"


def sanstype_data(work, source, device):
    out = os.path.join(work, "sanstype-data")
    if os.path.exists(os.path.join(out, "dataset.json")):
        return out, "reused"
    if source and os.path.exists(os.path.join(source, "dataset.json")):
        shutil.copytree(source, out)
        return out, f"copy of {os.path.relpath(source, REPO)}"
    released = os.path.join(SHARED, "sanstype-1000a")
    cmd = [sys.executable, "-m", "composed_ft.code", "make-sanstype", "--variant", "authors", "--out", out,
           "--n-unlabeled", "2000", "--n-gen", "64"]
    if os.path.isdir(released):
        cmd += ["--labeled-from", released]
        note = "make-sanstype: the released splits, 2,000 unlabeled and 64 generated test programs each"
    else:
        note = "stand-in: make-sanstype drew every split (../shared/data/sanstype-1000a missing)"
    _run(cmd, _env(device), "make-sanstype")
    return out, note


def spoc_release():
    for d in (os.path.join(REPO, "data", "spoc"), os.path.join(SHARED, "spoc")):
        if os.path.isdir(os.path.join(d, "train")):
            return d
    return None


# ---------------------------------------------------------------- the experiments

def run_imggen(work, device, caps, fonts):
    data, note = fonts_data(work, fonts)
    env = _env(device, TARGETS="main", DATA=data, RUNS=os.path.join(work, "runs", "imggen"),
               TABLE=os.path.join(work, "imggen.md"), STAGE_FLAGS=_stage_flags(caps, ("max_update",)))
    return {"imggen/runner.sh": _run(["bash", "imggen/runner.sh"], env, "imggen/runner.sh")}, note, 8


def run_sanstype(work, device, caps, source):
    data, note = sanstype_data(work, source, device)
    runs = os.path.join(work, "runs", "sanstype")
    n_gen = "2000" if os.path.exists(os.path.join(data, "test_gen.tgt")) else "0"
    env = _env(device, TARGETS="main bt", DATA=data, RUNS=runs, TABLE=os.path.join(work, "sanstype.md"), N_GEN=n_gen,
               BT_N_UNLABELED=caps["bt_n_unlabeled"], STAGE_FLAGS=_stage_flags(caps))
    walls = {"code/runner.sh": _run(["bash", "code/runner.sh"], env, "code/runner.sh")}
    walls["evaluate"] = _evaluate(os.path.join(runs, "main", "composed-s0"), device, caps)
    return walls, note, 8


def run_spoc(work, device, caps):
    release = spoc_release()
    if release is None:
        return None, "skipped: no SPoC release (../shared/data/spoc or data/spoc)", 0
    runs, data = os.path.join(work, "runs", "spoc"), os.path.join(work, "spoc-data")
    code = [sys.executable, "-m", "composed_ft.code"]
    # the runner's first two commands, with its flags, run here to be timed apart (the runner then skips them)
    walls = {}
    if not os.path.exists(os.path.join(data, "dataset.json")):
        make = ["make-spoc", "--preset", "paper", "--out", data, "--copies", str(caps["copies"]), "--n-train", "0",
                "--n-val", str(caps["n_val"]), "--n-unlabeled", str(caps["n_unlabeled"]), "--spoc-dir", release]
        walls["make-spoc"] = _run(code + make, _env(device), "make-spoc")
    walls["gold-ceiling"] = _run(code + ["gold-ceiling", "--dataset", "spoc", "--preset", "paper", "--stds", "gnu++11",
                                         "--out", os.path.join(runs, "gold_ceiling"), "--limit", str(caps["n_eval"]),
                                         "--data", release], _env(device), "gold-ceiling")
    env = _env(device, DATA=data, RUNS=runs, TABLE=os.path.join(work, "spoc.md"), SPOC_DIR=release,
               N_EVAL=caps["n_eval"], STAGE_FLAGS=_stage_flags(caps, ("max_update", "n_valid", "max_len")))
    walls["code/runner_spoc.sh"] = _run(["bash", "code/runner_spoc.sh"], env, "code/runner_spoc.sh")
    walls["evaluate"] = _evaluate(os.path.join(runs, "main", "composed-s0"), device, caps)
    note = (f"make-spoc from {os.path.relpath(release, REPO)}: every train program, {caps['n_val']} validation and "
            f"{caps['n_unlabeled']} unlabeled programs, {caps['copies']} corrupted copies each; gold ceiling and "
            f"evaluation on the first {caps['n_eval']} programs of TestW and TestP")
    return walls, note, 6


def _evaluate(run_dir, device, caps):
    cmd = [sys.executable, "-m", "composed_ft.code", "evaluate", "--run-dir", run_dir, "--device", device,
           "--eval-splits", *_eval_splits(run_dir), "--out", os.path.join(run_dir, "eval_dry_run.json")]
    if caps.get("n_eval"):
        cmd += ["--n-eval", str(caps["n_eval"])]
    if caps.get("max_len"):
        cmd += ["--max-len", str(caps["max_len"])]
    return _run(cmd, _env(device), f"evaluate {run_dir}")


def _eval_splits(run_dir):
    with open(os.path.join(run_dir, "config.json")) as fh:
        return json.load(fh)["config"]["eval_splits"]


# ---------------------------------------------------------------- what the runs say

def _read(path):
    with open(path) as fh:
        return json.load(fh)


def _rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def record(experiment, root, run_dir):
    """What a finished run says about its stage: sizes, updates, timings (see the module docstring)."""
    cfg = _read(os.path.join(run_dir, "config.json"))["config"]
    res = _read(os.path.join(run_dir, "results.json"))
    epochs = [r for r in _rows(os.path.join(run_dir, "metrics.jsonl")) if "epoch" in r]
    steady = epochs[1:] if len(epochs) > 2 else epochs  # a run of many short epochs: the first one warms up
    rec = {"experiment": experiment, "run": os.path.relpath(run_dir, root), "stage": cfg.get("stage"),
           "method": res.get("method") or cfg.get("method") or cfg.get("stage"), "device": cfg.get("device"),
           "updates": res.get("updates"), "epochs_run": res.get("epochs"), "wall_s": res.get("wall_s"),
           "train_s": res.get("train_s"), "eval_s": res.get("eval_s"), "save_s": res.get("save_s"),
           "update_s": _median([r.get("update_s") for r in steady]),
           "epoch_extra_s": _median([(r.get("setup_s") or 0) + (r.get("val_s") or 0) for r in steady]),
           "val_s": _median([r.get("val_s") for r in steady]),
           "cuda_peak_gib": max([r.get("cuda_peak_gib") or 0 for r in epochs], default=0) or None,
           "n_params": res.get("n_params")}
    if rec["update_s"] is None:  # epochs of a single update (a tiny capped data set): the epoch's training time
        per, prev = [], 0        # per update, the first epoch left out when there are more (an upper bound)
        for r in epochs:
            if r.get("updates") and r.get("epoch_s") and r["updates"] > prev:
                per.append((r["epoch_s"] - (r.get("setup_s") or 0)) / (r["updates"] - prev))
            prev = r.get("updates") or prev
        rec["update_s"] = _median(per[1:] if len(per) > 1 else per)
        rec["update_s_from"] = "epoch_s"
    if experiment == "imggen":
        rec["sizes"] = {k: cfg.get(k) for k in ("unet_width", "batch_size", "max_epoch", "preset")}
        # validation (100 pairs / the 1,000 held-out glyphs) and the whole test set are a paper run's own sizes
        rec.update(examples=res.get("n_unlabeled") or res.get("n_train"), val_n=None, eval_n=None)
    else:
        rec["sizes"] = {k: cfg.get(k) for k in ("arch", "layers", "d_model", "ffn", "heads", "vocab_size", "vocab_n",
                                                "max_tokens", "update_freq", "max_positions", "preset")}
        rec.update(_code_sizes(cfg, res))
    return rec


def _count(data, split, cap=0):
    path = os.path.join(data, f"{split}.tgt")
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as fh:
        n = sum(1 for _ in fh)
    return min(n, cap) if cap else n


def _code_sizes(cfg, res):
    """Training examples, validation examples and evaluated examples of a code stage's run."""
    data, n_valid = cfg["data"], cfg.get("n_valid") or 0
    if cfg["stage"] == "denoise":
        val_n = _count(data, "unlabeled_val", n_valid)
        # the authors' SansType: the denoiser also repairs the corrupted labeled train programs (stages.py)
        authors = _read(os.path.join(data, "dataset.json")).get("variant") == "authors" and cfg.get("noise") in (
            "structured", "delete")
        return {"examples": res.get("n_unlabeled"), "val_n": val_n,
                "eval_n": val_n + (_count(data, "train", n_valid) if authors else 0)}
    evals = res.get("eval") or {}
    return {"examples": res.get("n_train_pairs") or _count(data, "train", cfg.get("n_train") or 0),
            "val_n": _count(data, "val", n_valid),
            "eval_n": sum(e.get("n", 0) for e in evals.values() if isinstance(e, dict)) or None}


def collect(root):
    out = []
    for experiment in EXPERIMENTS:
        base = os.path.join(root, "runs", experiment)
        for d, _, files in sorted(os.walk(base)):
            if "results.json" in files and "config.json" in files:
                out.append(record(experiment, base, d))
    return out


def check(records, experiments):
    """Every stage ran, at the paper preset's sizes. Returns the problems found."""
    from composed_ft.code.presets import ARCHS
    from composed_ft.imggen.presets import PRESETS
    want = {"imggen": {"denoisers/blur2", "main/direct-n2500-s0", "main/composed-n2500-s0",
                       "main/direct_strong-n2500-s0", "main/direct-n500-s0", "main/composed-n500-s0",
                       "main/direct_strong-n500-s0"},
            "sanstype": {"denoisers/main-s0", "main/pretrain-s0", "main/direct-s0", "main/composed-s0", "bt/reverse-s0",
                         "bt/backtranslate-s0", "bt/composed-bt-s0"},
            "spoc": {"denoisers/main", "main/direct-s0", "main/pretrain-s0", "main/composed-s0"}}
    problems = []
    for exp in experiments:
        got = {r["run"] for r in records if r["experiment"] == exp}
        problems += [f"{exp}: {run} did not finish" for run in sorted(want[exp] - got)]
    for r in records:
        s = r["sizes"]
        if s.get("preset") != "paper":
            problems.append(f"{r['experiment']}/{r['run']}: preset {s.get('preset')}")
        if r["experiment"] == "imggen":
            if r["stage"] == "denoise" and s["unet_width"] != PRESETS["denoise"]["paper"]["unet_width"]:
                problems.append(f"imggen/{r['run']}: U-Net width {s['unet_width']}")
            if s["batch_size"] != 256:
                problems.append(f"imggen/{r['run']}: batch {s['batch_size']}")
        else:
            arch = ARCHS["paper" if r["experiment"] == "sanstype" else "spoc-paper"]
            if any(s[k] != v for k, v in arch.items()) or s["max_tokens"] != 4000 or s["update_freq"] != 4:
                problems.append(f"{r['experiment']}/{r['run']}: not the paper's sizes ({s})")
        if not r["updates"]:
            problems.append(f"{r['experiment']}/{r['run']}: no update")
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="directory for data copies, run directories and dry_run.json")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (the stages' --device)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="dry")
    p.add_argument("--experiments", nargs="*", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    p.add_argument("--fonts", default=os.path.join(REPO, "data/fonts/fonts32.npz"))
    p.add_argument("--sanstype-data", default=os.path.join(REPO, "data/sanstype-paper"))
    p.add_argument("--budget-s", type=float, default=0,
                   help="skip the experiments still to run once this many seconds have passed (0: no budget)")
    args = p.parse_args(argv)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    profile = PROFILES[args.profile]
    t0 = time.time()
    out = {"device": args.device, "profile": args.profile, "caps": profile, "experiments": {}, "started":
           time.strftime("%Y-%m-%d %H:%M:%S")}
    for exp in args.experiments:
        if args.budget_s and time.time() - t0 > args.budget_s:
            out["experiments"][exp] = {"note": f"skipped: the {args.budget_s:.0f} s budget was spent"}
            log(f"{exp}: skipped (budget)")
            continue
        log(f"{exp}: start")
        t = time.time()
        if exp == "imggen":
            walls, note, n_proc = run_imggen(work, args.device, profile[exp], args.fonts)
        elif exp == "sanstype":
            walls, note, n_proc = run_sanstype(work, args.device, profile[exp], args.sanstype_data)
        else:
            walls, note, n_proc = run_spoc(work, args.device, profile[exp])
        # processes: the runner's python commands (every stage, `table`, the SPoC line-wise denoiser that is off)
        out["experiments"][exp] = {"note": note, "wall_s": time.time() - t, "commands": walls, "processes": n_proc}
        log(f"{exp}: {time.time() - t:.0f} s ({note})")
    out["records"] = collect(work)
    ran = [e for e, v in out["experiments"].items() if "wall_s" in v]
    out["problems"] = check(out["records"], ran)
    out["wall_s"] = time.time() - t0
    with open(os.path.join(work, "dry_run.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    for r in out["records"]:
        log(f"{r['experiment']:8s} {r['run']:28s} updates {r['updates']} wall {r['wall_s'] or 0:.1f} s "
            f"update {r['update_s'] or 0:.3f} s eval {r['eval_s'] or 0:.1f} s")
    if out["problems"]:
        log("PROBLEMS:\n  " + "\n  ".join(out["problems"]))
        return 1
    log(f"every stage ran at the paper preset's sizes in {out['wall_s']:.0f} s: {work}/dry_run.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
