"""torchrun scale-out of the seq2seq stages: 2 CPU processes (gloo) with the same global batches
match one process; a composed stage (sampling through the frozen Π) runs under torchrun too."""
import json
import os
import subprocess
import sys

import pytest

from composed_ft.code.__main__ import main as cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--n-train", "48", "--n-val", "8", "--n-test", "4", "--n-ood", "4", "--n-unlabeled", "48",
         "--n-unlabeled-val", "8"]


def _stage(prefix, argv):
    env = dict(os.environ, PYTHONPATH=ROOT, CI="1", OMP_NUM_THREADS="1")
    r = subprocess.run(prefix + ["-m", "composed_ft.code", *argv], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow  # five stages under torchrun: minutes (`bash scripts/test.sh -m slow`)
def test_torchrun_two_processes_match_one(tmp_path):
    data = str(tmp_path / "data")
    cli(["make-sanstype", "--out", data, "--seed", "5", "--jobs", "2"] + SMALL)
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "2",
              "--device", "cpu", "--jobs", "1", "--dropout", "0", "--attention-dropout", "0",
              "--activation-dropout", "0", "--max-epoch", "3", "--n-train", "0", "--n-valid", "0"]
    one_proc = [sys.executable]
    two_procs = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]  # a free port
    _stage(one_proc, ["direct", *common, "--run-dir", str(tmp_path / "one")])
    _stage(two_procs, ["direct", *common, "--run-dir", str(tmp_path / "two")])
    one, two = (json.load(open(tmp_path / d / "results.json")) for d in ("one", "two"))
    assert one["updates"] == two["updates"] > 3  # the same global batches
    m1, m2 = ([json.loads(x) for x in open(tmp_path / d / "metrics.jsonl")] for d in ("one", "two"))
    assert [r["epoch"] for r in m2] == [1, 2, 3]  # rank 0 alone wrote the log
    # Each process normalizes its share of a batch by its own token count, so the averaged gradient
    # weighs tokens slightly differently from one process: close, not identical.
    for a, b in zip(m1, m2):
        assert b["val_nll"] == pytest.approx(a["val_nll"], rel=0.03)
    assert "eval" in two and set(two["eval"]) == {"test", "ood"}
    # denoiser + composed stage under torchrun (rank 0 evaluates; Π stays frozen on every rank)
    _stage(two_procs, ["denoise", *common, "--run-dir", str(tmp_path / "den"), "--max-epoch", "1"])
    _stage(two_procs, ["compose", *common, "--run-dir", str(tmp_path / "comp"), "--init", str(tmp_path / "two"),
                       "--denoiser", str(tmp_path / "den"), "--max-epoch", "1"])
    comp = json.load(open(tmp_path / "comp" / "results.json"))
    assert comp["stage"] == "compose" and comp["updates"] >= 1
