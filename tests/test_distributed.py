"""torchrun scale-out: 2 CPU processes (gloo) with the same global batch match one process."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(cmd_prefix, tiny_fonts, den, run_dir):
    env = dict(os.environ, PYTHONPATH=ROOT, CI="1", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd_prefix + ["-m", "composed_ft.imggen", "train", "--preset", "smoke", "--method", "composed",
                                     "--l2", "1e-4", "--dropout", "0", "--data", tiny_fonts, "--denoiser", den,
                                     "--n-train", "512", "--max-epoch", "3", "--device", "cpu",
                                     "--run-dir", run_dir], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.load(open(os.path.join(run_dir, "results.json")))


def test_torchrun_two_processes_match_one(tiny_fonts, tmp_path):
    from composed_ft.imggen import train
    from composed_ft.imggen.__main__ import parse
    den = str(tmp_path / "den")
    train.denoise(parse(["denoise", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", den, "--device", "cpu"]))
    one = _train([sys.executable], tiny_fonts, den, str(tmp_path / "one"))
    two = _train([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"],
                 tiny_fonts, den, str(tmp_path / "two"))
    assert one["updates"] == two["updates"] == 3 * 8  # same global batches (64 = 2 x 32)
    # Each rank normalizes its half batch with its own BatchNorm statistics, so the runs are close,
    # not bit-identical.
    for k in ("test_mse_base", "test_mse_denoised"):
        assert two[k] == pytest.approx(one[k], rel=0.05), k
    rows = [json.loads(x) for x in open(tmp_path / "two" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # rank 0 alone wrote the log
