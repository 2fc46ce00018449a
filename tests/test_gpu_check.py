"""scripts/gpu_check.sh: one line and exit 0 without CUDA; its projection and results/GPU.md's tables,
from a fake measurement (the real one needs a GPU; the paper-size dry run that feeds it is
tests/test_paper_dry_run.py, slow)."""
import os
import subprocess
import sys

import pytest
from conftest import load_script

from composed_ft.core import projection

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_without_cuda_one_line_and_exit_0():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the script would measure")
    p = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=REPO, env=dict(os.environ, PY=sys.executable),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\n") == 1 and "no CUDA device" in p.stdout and not p.stderr
    assert not os.path.exists(os.path.join(REPO, "results", "GPU.md")) or "GPU.md" in subprocess.run(
        ["git", "ls-files", "results/GPU.md"], cwd=REPO, capture_output=True, text=True).stdout  # nothing written


def test_stage_seconds_arithmetic():
    meas = dict(update_s=0.02, setup_s=0.01, examples=100, val_s=0.5, val_n=50, save_s=0.1, eval_s=4.0, eval_n=8,
                fixed_s=12.0)
    plan = dict(updates=1000, epochs=10, val_n=500, eval_n=80, examples=1000)
    s = projection.stage_seconds(meas, plan)
    assert s["updates_s"] == pytest.approx(20.0)
    # per epoch: batch list x10 (10x the examples), validation x10 (10x the examples), checkpoint
    assert s["epochs_s"] == pytest.approx(10 * (0.1 + 5.0 + 0.1))
    assert s["eval_s"] == pytest.approx(40.0) and s["fixed_s"] == 12.0
    assert s["total_s"] == pytest.approx(20 + 52 + 40 + 12)
    # validation passes beyond epochs (imggen's curve) and parts that were not measured
    s = projection.stage_seconds(dict(update_s=0.01), dict(updates=100, epochs=2, val_passes=5))
    assert s == {"updates_s": 1.0, "epochs_s": 0.0, "eval_s": 0.0, "fixed_s": 0.0, "total_s": 1.0}
    assert [projection.fmt_s(x) for x in (3.21, 42, 210, 7200)] == ["3.2 s", "42 s", "3.5 min", "2.0 h"]


def _fake_dry_run():
    rec = dict(experiment="sanstype", updates=24, epochs_run=1, save_s=0.2, cuda_peak_gib=3.5, examples=1000, val_n=500)
    return {"device": "cuda", "profile": "measure", "caps": {"sanstype": {"max_update": 24, "n_eval": 64}},
            "experiments": {"sanstype": {"note": "copy of data/sanstype-paper", "wall_s": 100.0, "processes": 8,
                                         "commands": {"code/runner.sh": 90.0, "evaluate": 5.0}}},
            "records": [dict(rec, run="denoisers/main-s0", stage="denoise", wall_s=10.0, update_s=0.05, val_s=0.3,
                             epoch_extra_s=0.4, eval_s=2.0, eval_n=1500),
                        dict(rec, run="main/direct-s0", stage="direct", wall_s=10.0, update_s=0.02, val_s=0.1,
                             epoch_extra_s=0.1, eval_s=6.4, eval_n=256),
                        dict(rec, run="main/composed-s0", stage="compose", wall_s=20.0, update_s=0.2, val_s=1.0,
                             epoch_extra_s=1.0, eval_s=6.4, eval_n=256)],
            "problems": []}


def _fake_plan():
    st = dict(table="sanstype", val_n=500, eval_n=5000, examples=1000)
    return {"sources": {"sanstype": {"data": "data/sanstype-paper"}},
            "stages": [dict(st, stage="denoise", run="denoisers/main-s0", updates=5950, epochs=50, eval_n=1500,
                            examples=1000),
                       dict(st, stage="direct", run="main/direct-s0", updates=3500, epochs=500),
                       dict(st, stage="pretrain", run="main/pretrain-s0", updates=2100, epochs=300),
                       dict(st, stage="compose", run="main/composed-s0", updates=2100, epochs=300),
                       dict(table="spoc", stage="denoise", run="denoisers/main", updates=1, epochs=1, val_n=1,
                            eval_n=1, examples=1)]}


def test_projection_and_gpu_md_from_a_fake_measurement():
    gc = load_script("gpu_check")
    dry, plan = _fake_dry_run(), _fake_plan()
    meas = gc.measurements(dry)
    # start-up per process: (runner 90 s - the runs' 40 s) / 8 processes, added to every stage's fixed part
    direct = meas[("sanstype", "main/direct-s0")]
    assert direct["fixed_s"] == pytest.approx(10.0 - 24 * 0.02 - (0.1 + 0.2) - 6.4 + 50 / 8)
    tables, missing = gc.project(dry, plan)
    assert list(tables) == ["SansType main"] and [r[0] for r in tables["SansType main"]] == ["denoiser", "direct",
                                                                                           "composed"]
    assert missing == ["SansType main: main/pretrain-s0", "SPoC main: denoisers/main"]
    label, st, sec = tables["SansType main"][1]
    assert sec["updates_s"] == pytest.approx(3500 * 0.02)
    assert sec["epochs_s"] == pytest.approx(500 * (0.1 + 0.2))
    assert sec["eval_s"] == pytest.approx(6.4 / 256 * 5000)
    info = dict(gpu="NVIDIA H200", memory_gib=139.8, cpu_cores=16, torch="2.11", cuda="13.0", bf16_tflops=780.0,
                commit="abc1234")
    graphs = dict(graphs=True, failure=None, rows=64, steps=200, agree=1.0, step_s_graph=2e-4, step_s_eager=1.4e-3)
    md = gc.render(info, graphs, dry, plan, tables, missing)
    assert md.startswith("# The paper preset on one GPU") and "NVIDIA H200 (140 GiB)" in md
    assert "## Measured per stage" in md and "## Projected wall time of each paper table (one seed)" in md
    assert "| sanstype | main/direct-s0 | 24 | 0.0200 | 50.0 | 0.10 (500) | 0.025 | 3.5 GiB |" in md
    total = projection.table_seconds([(s, x) for s, _, x in tables["SansType main"]])["total_s"]
    assert "| **SansType main** | **total** |" in md and f"**{projection.fmt_s(total)}**" in md
    assert "- SansType main: bounded by " in md and "Not measured (no projection): SansType main: main/pretrain" in md
    assert "0.20 ms per step captured vs 1.40 ms uncaptured" in md
