"""A fingerprint of every stage at the smoke preset: metrics and outputs, without timings.

A refactor must not change numbers. This runs every stage of the code experiments (SansType in the
authors' format and the strict variant, SPoC) and of imggen at the smoke preset, one thread, fixed
seeds, and writes one JSON: per run directory its results.json and metrics.jsonl with every time-like
field removed, and the SHA-256 of each per-program record file. Two commits give byte-identical
JSON exactly when their stages compute the same numbers and outputs.

    python scripts/smoke_fingerprint.py --out /tmp/before.json
    ... refactor ...
    python scripts/smoke_fingerprint.py --out /tmp/after.json && cmp /tmp/before.json /tmp/after.json
"""
import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# fields that measure time, machine speed or paths rather than what was computed
VOLATILE = ("time", "wall_s", "train_s", "resumed_train_s", "epoch_s", "items_per_s", "gflops", "mfu", "decode_s",
            "judge_s", "git_commit", "run_dir", "path", "data", "vocab", "init", "denoiser", "reverse_model", "out",
            "created", "machine", "host")


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in sorted(obj.items()) if k not in VOLATILE and not k.endswith("_s")}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    return obj


def _sh(cmd, env, cwd=REPO):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")


def fingerprint(root):
    out = {}
    for res in sorted(glob.glob(os.path.join(root, "**", "results.json"), recursive=True)):
        d = os.path.dirname(res)
        rel = os.path.relpath(d, root)
        with open(res) as fh:
            entry = {"results": _clean(json.load(fh))}
        m = os.path.join(d, "metrics.jsonl")
        if os.path.exists(m):
            with open(m) as fh:
                entry["metrics"] = [_clean(json.loads(line)) for line in fh if line.strip()]
        for f in sorted(glob.glob(os.path.join(d, "eval_*.jsonl"))):
            with open(f, "rb") as fh:
                entry[os.path.basename(f)] = hashlib.sha256(fh.read()).hexdigest()
        out[rel] = entry
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--skip", nargs="*", default=[], choices=["sanstype", "strict", "spoc", "imggen"])
    args = p.parse_args(argv)
    py = sys.executable
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CI="1", PY=py, PRESET="smoke", DEVICE="cpu",
               SEEDS="0")
    with tempfile.TemporaryDirectory() as tmp:
        small = ["--n-train", "40", "--n-val", "12", "--n-test", "8", "--n-ood", "8", "--n-unlabeled", "64",
                 "--n-unlabeled-val", "12", "--jobs", "2"]
        if "sanstype" not in args.skip:
            _sh([py, "-m", "composed_ft.code", "make-sanstype", "--variant", "authors", "--out", f"{tmp}/st", "--n-gen",
                 "8"] + small, env)
            _sh(["bash", "code/runner.sh"], dict(env, TARGETS="all", DATA=f"{tmp}/st", RUNS=f"{tmp}/runs/sanstype",
                                                 TABLE=f"{tmp}/st.md", N_GEN="8", ABL_N_UNLABELED="16"))
        if "strict" not in args.skip:
            _sh([py, "-m", "composed_ft.code", "make-sanstype", "--variant", "strict", "--out", f"{tmp}/strict"]
                + small, env)
            _sh(["bash", "code/runner.sh"], dict(env, TARGETS="main", VARIANT="strict", DATA=f"{tmp}/strict",
                                                 RUNS=f"{tmp}/runs/strict", TABLE=f"{tmp}/strict.md"))
        if "spoc" not in args.skip:
            _sh(["bash", "code/runner_spoc.sh"], dict(env, DATA=f"{tmp}/spoc", RUNS=f"{tmp}/runs/spoc",
                                                      TABLE=f"{tmp}/spoc.md"))
        if "imggen" not in args.skip:
            sys.path.insert(0, os.path.join(REPO, "tests"))
            from conftest import make_synthetic_fonts  # the tests' small fonts data set, rendered from real fonts
            fonts = f"{tmp}/fonts.npz"
            make_synthetic_fonts(fonts)
            _sh(["bash", "imggen/runner.sh"], dict(env, DATA=fonts, RUNS=f"{tmp}/runs/imggen", TABLE=f"{tmp}/img.md"))
        fp = fingerprint(os.path.join(tmp, "runs"))
    with open(args.out, "w") as fh:
        json.dump(fp, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"{args.out}: {len(fp)} run directories")


if __name__ == "__main__":
    main()
