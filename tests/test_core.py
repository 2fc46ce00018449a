"""Core pieces: tables, run directories, checkpoints, atomic writes, the LR schedule."""
import json
import os

import pytest
import torch

from composed_ft.core import checkpoint, tables
from composed_ft.core.errors import UserError
from composed_ft.core.io import write_json
from composed_ft.core.runs import Run
from composed_ft.core.schedule import build, cosine, inverse_sqrt


def test_table_mean_std_and_tsv():
    md, tsv = tables.render(["method", "mse"], [["a", [1.0, 2.0, 3.0]], ["b", [0.5]], ["c", []]], digits=2)
    assert "| a | 2.00 ± 1.00 |" in md and "| b | 0.50 |" in md and "| c | — |" in md
    lines = tsv.strip().split("\n")
    assert lines[0] == "method\tmse mean\tmse std\tmse n"
    assert lines[1].split("\t") == ["a", "2", "1", "3"]
    assert tables.ci95([1.0, 2.0, 3.0]) == pytest.approx(4.303 * 1.0 / 3 ** 0.5)


def test_collect_reads_finished_runs_only(tmp_path):
    Run(tmp_path / "r1", {"x": 1}).start().finish({"mse": 0.5})
    Run(tmp_path / "r2", {"x": 2}).start()  # unfinished
    rows = tables.collect(str(tmp_path / "*"))
    assert [r["config"]["x"] for r in rows] == [1] and rows[0]["results"]["mse"] == 0.5


def test_run_refuses_different_settings_and_records_commit(tmp_path):
    r = Run(tmp_path / "r", {"lr": 1e-3, "device": "cpu"}).start()
    cfg = json.load(open(r.file("config.json")))
    assert cfg["config"]["lr"] == 1e-3 and cfg["git_commit"]
    Run(tmp_path / "r", {"lr": 1e-3, "device": "cuda"}).start()  # device may change on resume
    with pytest.raises(UserError, match="lr"):
        Run(tmp_path / "r", {"lr": 2e-3, "device": "cpu"}).start()


def test_git_commit_dirty_ignores_results_only(tmp_path):
    """A clean clone stays clean while runner.sh rewrites results/ between stages; a code change is dirty."""
    import subprocess

    from composed_ft.core.runs import git_commit

    def git(*a):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "c")
    sha = git_commit(str(tmp_path))
    assert len(sha) == 40 and not sha.endswith("+dirty")
    (tmp_path / "results" / "table.md").write_text("new\n")
    assert git_commit(str(tmp_path)) == sha
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(str(tmp_path)) == sha + "+dirty"


def test_metrics_truncation_on_resume(tmp_path):
    r = Run(tmp_path / "r", {}).start()
    for i in range(5):
        r.log_metrics(epoch=i)
    r.truncate_metrics(3)
    assert [m["epoch"] for m in r.metrics()] == [0, 1, 2]


def test_metric_row_count_kept_without_rereading(tmp_path):
    # n_metrics is asked every epoch; it counts the file once and then follows log/truncate
    r = Run(tmp_path / "r", {}).start()
    assert r.n_metrics() == 0
    for i in range(4):
        r.log_metrics(epoch=i)
    assert r.n_metrics() == 4 == len(r.metrics())
    with open(r.file("metrics.jsonl"), "a") as fh:
        fh.write('{"epoch": 9, "partial')  # a kill mid-write: the partial line is not a row
    fresh = Run(tmp_path / "r")
    assert fresh.n_metrics() == 4
    fresh.truncate_metrics(2)
    fresh.log_metrics(epoch=2)
    assert fresh.n_metrics() == 3 == len(fresh.metrics())


def test_checkpoint_errors_name_the_file(tmp_path):
    p = tmp_path / "c.pt"
    checkpoint.save(p, {"model": torch.nn.Linear(2, 3).state_dict()})
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # no temp file left behind
    with pytest.raises(UserError, match="does not fit"):
        checkpoint.load_model_state(torch.nn.Linear(3, 3), checkpoint.load(p)["model"], p)
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="bad.pt"):
        checkpoint.load(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "r.json"
    write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        write_json(p, {"a": object()})
    assert json.load(open(p)) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_inverse_sqrt_schedule():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = inverse_sqrt(opt, warmup_updates=4)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[15] == pytest.approx((4 / 16) ** 0.5)


def test_warmup_starts_from_warmup_init_lr():
    """fairseq's --warmup-init-lr: the authors' Pretrained warms up from 1e-4 to 2e-3 over 150 updates."""
    for name in ("inverse_sqrt", "cosine"):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-3)
        sched = build(name, opt, 150, total_updates=300, warmup_init_lr=1e-4)
        lrs = []
        for _ in range(151):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert lrs[0] == pytest.approx(1e-4 + (2e-3 - 1e-4) / 150), name
        assert lrs[149] == pytest.approx(2e-3), name
        assert all(a < b for a, b in zip(lrs[:149], lrs[1:150])), name


def test_cosine_schedule():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    sched = cosine(opt, warmup_updates=4, total_updates=12, min_ratio=0.1)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])  # the same warmup as inverse_sqrt
    assert lrs[7] == pytest.approx(0.2 + 1.8 * 0.5)          # half way through the decay: the mean of peak and floor
    assert lrs[11:] == pytest.approx([0.2] * 5)              # the floor from the last update on
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))    # never rises after the warmup
    with pytest.raises(ValueError, match="must exceed the warmup"):
        cosine(opt, warmup_updates=10, total_updates=10)
    with pytest.raises(ValueError, match="unknown lr scheduler"):
        build("linear", opt, 4)


def test_gemm_peak_is_the_best_recorded_on_this_machine(tmp_path, monkeypatch):
    from composed_ft.core import perf
    key = perf._peak_key("cpu")
    monkeypatch.setattr(perf, "measure_gemm_flops", lambda device_type="cpu": 5e9)
    # a higher peak recorded earlier (an idle machine) wins over a low measurement now (a loaded one)
    high = tmp_path / "high.json"
    write_json(high, {key: 7e9, "other|machine": 1.0})
    assert perf.gemm_peak_flops("cpu", str(high)) == 7e9
    assert json.loads(high.read_text())[key] == 7e9
    # a lower record is raised to the new measurement; other machines' entries are kept
    low = tmp_path / "low.json"
    write_json(low, {key: 1e9, "other|machine": 1.0})
    assert perf.gemm_peak_flops("cpu", str(low)) == 5e9
    assert json.loads(low.read_text()) == {key: 5e9, "other|machine": 1.0}
    # no file, or a corrupt one: the measurement, written for next time
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert perf.gemm_peak_flops("cpu", str(bad)) == 5e9
    assert json.loads(bad.read_text()) == {key: 5e9}


def test_gemm_measurement_leaves_the_global_rng_alone():
    """fit() measures the GEMM peak after seeding (and after restoring a resumed run's RNG state):
    drawing from the global RNG there made the first run of a process differ from the next."""
    from composed_ft.core import perf
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    perf.measure_gemm_flops("cpu", n=64, reps=1)
    assert torch.equal(torch.rand(3), expected)


def test_results_name_their_machine_and_tables_say_when_a_run_did_not(tmp_path):
    from composed_ft.core import machine
    from composed_ft.core.runs import Run
    run = Run(str(tmp_path / "r"), {"stage": "x"})
    run.start()
    run.finish({"best": 1.0})
    res = run.results()
    assert res["machine"] == machine.describe() and res["best"] == 1.0
    assert machine.of_runs([res, dict(res)]) == res["machine"]
    text = machine.of_runs([res, {"best": 2.0}])
    assert text.startswith(res["machine"] + "; 1 run(s) did not record theirs")


def _fit_tiny(run_dir, kill_after_epoch=None, **kw):
    """A tiny regression trained with core.trainer.fit (dropout, shuffling: RNG state matters): 12 epochs of 3
    updates. kill_after_epoch: raise KeyboardInterrupt in the middle of the next epoch."""
    from composed_ft.core import trainer
    from composed_ft.core.seed import seed_everything
    seed_everything(0)
    x, y = torch.randn(24, 4), torch.randn(24, 1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    run = Run(run_dir, {"stage": "tiny"}).start()
    seen = []

    def batches(epoch):
        if kill_after_epoch is not None and epoch == kill_after_epoch + 1:
            seen.append(epoch)
        perm = torch.randperm(24)
        return [perm[i:i + 8] for i in range(0, 24, 8)]

    def step(idx):
        if seen and len(seen) == 1:
            seen.append("killed")
            raise KeyboardInterrupt
        return torch.nn.functional.mse_loss(model(x[idx]), y[idx]), len(idx), {}

    def validate():  # noisy on purpose: the best epoch is not the last
        return {"val_loss": torch.nn.functional.mse_loss(model(x), y).item() + 0.01 * (len(run.metrics()) % 3)}
    return trainer.fit(run, model, opt, batches, step, validate, max_epoch=12, **kw), run


@pytest.mark.parametrize("every", [{"save_every_updates": 7}, {"save_every_s": 1e-9}, {"save_interval": 2}])
def test_fit_checkpoints_by_updates_or_time_resume_exactly(tmp_path, every):
    """Checkpoints every N updates or by time (deferred best checkpoints) or every N epochs: a run killed
    mid-epoch and resumed ends with the same weights, metrics and best checkpoint as an uninterrupted one."""
    full, run_full = _fit_tiny(str(tmp_path / "full"), **every)
    with pytest.raises(KeyboardInterrupt):
        _fit_tiny(str(tmp_path / "killed"), kill_after_epoch=8, **every)
    resumed, run_res = _fit_tiny(str(tmp_path / "killed"), **every)
    assert {k: full[k] for k in ("best", "best_epoch", "updates", "epochs")} == \
        {k: resumed[k] for k in ("best", "best_epoch", "updates", "epochs")}
    assert resumed["resumed_train_s"] > 0  # it did resume from a checkpoint, not from scratch
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        a = checkpoint.load(run_full.file(name))
        b = checkpoint.load(run_res.file(name))
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    assert checkpoint.load(run_full.file("checkpoint_best.pt"))["epoch"] == full["best_epoch"] != 12
    strip = lambda rows: [{k: v for k, v in r.items() if k.endswith("loss") or k == "epoch"} for r in rows]  # noqa: E731
    assert strip(run_full.metrics()) == strip(run_res.metrics())


def test_fit_by_updates_writes_fewer_checkpoints(tmp_path, monkeypatch):
    """save_every_updates: checkpoint_last.pt once per N updates (and at the end), the best one with it."""
    from composed_ft.core import checkpoint as ck
    writes = []
    real = ck.save
    monkeypatch.setattr(ck, "save", lambda path, state: (writes.append(os.path.basename(path)), real(path, state)))
    _fit_tiny(str(tmp_path / "r"), save_every_updates=12)  # 36 updates: after epochs 4, 8, 12
    assert writes.count("checkpoint_last.pt") == 3
    assert writes.count("checkpoint_best.pt") <= 3
