"""Every runner resolves every preset to a command plan: with PY=echo the runners print the commands
they would run instead of running them. This catches shell-level breakage that the smoke end-to-end
runs cannot (a preset-only variable that is empty, a `set -e` trap in an assignment): the cpu preset
of runner_spoc.sh once exited with status 1 before its first command because its empty POSITIONS
made `COMMON=...$([[ -n "" ]] && ...)` fail."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runner -> the commands (python -m composed_ft.<pkg> <command>) every preset must plan
EXPECTED = {
    "imggen/runner.sh": ["denoise", "train", "table"],  # fonts present (no apt install in a test)
    "code/runner.sh": ["make-sanstype", "denoise", "direct", "pretrain", "compose", "backtranslate", "table"],
    "code/runner_spoc.sh": ["make-spoc", "gold-ceiling", "denoise", "direct", "pretrain", "compose", "table"],
}


def plan(runner, preset, tmp_path, **extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data"
    if runner.startswith("imggen"):  # a present font file: the runner would otherwise apt-install fonts
        data = tmp_path / "fonts32.npz"
        data.touch()
    env = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET=preset, TARGETS="all", SEEDS="0 1",
               RUNS=str(tmp_path / "runs"), DATA=str(data), TABLE=str(tmp_path / "t.md"), JOBS="1")
    env.update(extra)
    p = subprocess.run(["bash", runner], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{runner} PRESET={preset}: rc {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return [line.split() for line in p.stdout.splitlines() if line.startswith("-m composed_ft.")]


@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
@pytest.mark.parametrize("runner", sorted(EXPECTED))
def test_runner_plans_every_preset(runner, preset, tmp_path):
    cmds = plan(runner, preset, tmp_path)
    planned = {c[2] for c in cmds}
    assert set(EXPECTED[runner]) <= planned, (runner, preset, planned)
    for c in cmds:
        if c[2] in ("make-sanstype", "make-spoc", "build-fonts", "gold-ceiling", "table"):
            continue
        if c[2] == "evaluate":  # a trained run's model with another Π, written as its own run under $RUNS
            assert c[c.index("--as-run") + 1].startswith(str(tmp_path / "runs")), c
            continue
        # every training stage carries the preset and a run directory under $RUNS
        assert c[c.index("--preset") + 1] == preset, c
        assert c[c.index("--run-dir") + 1].startswith(str(tmp_path / "runs")), c
    seeds = {c[c.index("--seed") + 1] for c in cmds if c[2] in ("direct", "train")}
    assert seeds == {"0", "1"}, seeds


def resolved(cmd):
    """The values a planned stage command resolves to: its flags over the preset's table (presets.py)."""
    from composed_ft.code.__main__ import build_parser
    from composed_ft.code.config import preset_values
    from composed_ft.core.presets import given_flags
    return preset_values(cmd[2], given_flags(build_parser().parse_args(cmd[2:])))


def test_runner_spoc_cpu_preset_values(tmp_path):
    """The cpu preset's budget-setting values reach the stages (results/NOTES.md times them)."""
    cmds = plan("code/runner_spoc.sh", "cpu", tmp_path)
    comp = resolved(next(c for c in cmds if c[2] == "compose"))
    assert comp["experiment"] == "spoc" and comp["max_epoch"] == 2 and comp["n_eval"] == 100
    assert comp["max_positions"] == 2048  # generation can pass the longest gold program
    paper = resolved(next(c for c in plan("code/runner_spoc.sh", "paper", tmp_path / "p") if c[2] == "compose"))
    assert paper["max_positions"] == 2048 and paper["n_eval"] == 0 and paper["arch"] == "spoc-paper"
    # an environment variable overrides the preset
    over = next(c for c in plan("code/runner_spoc.sh", "cpu", tmp_path / "o", COMP_EPOCHS="3") if c[2] == "compose")
    assert resolved(over)["max_epoch"] == 3
    # the line-wise denoiser is planned at every preset and off (0 epochs) but at smoke, where the test runs it
    for preset, epochs in (("cpu", 0), ("smoke", 1)):
        lines = next(c for c in plan("code/runner_spoc.sh", preset, tmp_path / f"l{preset}")
                     if c[2] == "denoise" and "given-lines" in c)
        assert resolved(lines)["max_epoch"] == epochs


# what a runner may pass by default: which run, which data, which preset -- never a preset's value
SELECTING = {"--preset", "--experiment", "--data", "--device", "--seed", "--tag", "--run-dir", "--denoiser", "--init",
             "--eval-splits", "--noise", "--noise-draw", "--reverse", "--reverse-model",
             # the "Pretrained, continued" control (a method: Composed with the REINFORCE term off) and its
             # evaluation at the checkpoint of the best validation CE, written as a run of its own
             "--reinforce", "--checkpoint", "--as-run"}


# imggen's main table is a design, not a preset: the labeled sizes, the denoiser's perturbation, the
# methods; the strongest Direct's settings (DIRECT_STRONG) are a measured choice of their own
SELECTING_IMGGEN = {"--preset", "--data", "--data-seed", "--device", "--seed", "--tag", "--run-dir", "--denoiser",
                    "--method", "--variant", "--n-train", "--perturb", "--blur-max"}


@pytest.mark.parametrize("runner", ["code/runner.sh", "code/runner_spoc.sh", "imggen/runner.sh"])
def test_runners_only_select_and_override(runner, tmp_path):
    """By default a runner selects (preset, data, runs) and leaves every value to the preset's table: a
    value written in a runner would be a second preset mechanism that can drift from the first."""
    allowed = SELECTING_IMGGEN if runner.startswith("imggen") else SELECTING
    for preset in ("smoke", "cpu", "paper"):
        for c in plan(runner, preset, tmp_path / preset, TARGETS="main"):
            if c[2] in ("make-sanstype", "make-spoc", "gold-ceiling", "table", "build-fonts") or "strong" in c:
                continue
            assert {a for a in c if a.startswith("--")} <= allowed, (preset, c)


def test_runner_checkpoint_select_reaches_predictors_not_compose(tmp_path):
    """CHECKPOINT_SELECT picks the kept epoch of Direct, Pretrained, reverse and backtranslation; Composed
    keeps its own rule (best validation NLL_Π, the method's objective), and unset leaves the preset's."""
    cmds = plan("code/runner.sh", "cpu", tmp_path, CHECKPOINT_SELECT="best")
    for c in cmds:
        if c[2] in ("direct", "pretrain", "backtranslate"):
            assert c[c.index("--checkpoint-select") + 1] == "best", c
        elif c[2] in ("compose", "denoise"):
            assert "--checkpoint-select" not in c, c
    assert {c[2] for c in cmds} >= {"direct", "pretrain", "backtranslate", "compose"}
    assert not any("--checkpoint-select" in c for c in plan("code/runner.sh", "cpu", tmp_path / "unset"))


def test_runner_ablations_reuse_the_main_runs(tmp_path):
    """`init`, `lam` and `baseline` train only what differs from the main runs, which are their reference
    rows (and train those first): Composed from the main Direct (no second, identical Direct), the λ values
    other than the main one, the leave-one-out baseline beside the main Composed."""
    runs = str(tmp_path / "runs")
    for targets, want in [("init", {"main/pretrain", "main/direct", "main/composed",
                                    "ablation-init/composed-from-direct"}),
                          ("lam", {"main/pretrain", "main/composed", "ablation-lam/composed-lam0.25",
                                   "ablation-lam/composed-lam4"}),
                          ("baseline", {"main/pretrain", "main/composed", "main/composed-loo"})]:
        cmds = [c for c in plan("code/runner.sh", "cpu", tmp_path / targets, TARGETS=targets, SEEDS="0",
                                RUNS=runs) if c[2] not in ("make-sanstype", "table")]
        dirs = {os.path.relpath(c[c.index("--run-dir") + 1], runs) for c in cmds}
        assert dirs == {d + "-s0" for d in want} | {"denoisers/main-s0"}, (targets, dirs)
        if targets == "init":
            comp = next(c for c in cmds if "composed-from-direct" in c[c.index("--run-dir") + 1])
            assert comp[comp.index("--init") + 1] == os.path.join(runs, "main", "direct-s0")
    # `noise`: its Direct + Π(delete) is the main Direct's model evaluated with the delete Π, not a second,
    # identical training
    cmds = [c for c in plan("code/runner.sh", "cpu", tmp_path / "noise", TARGETS="noise", SEEDS="0", RUNS=runs)
            if c[2] not in ("make-sanstype", "table")]
    trained = {os.path.relpath(c[c.index("--run-dir") + 1], runs) for c in cmds if c[2] != "evaluate"}
    assert trained == {"denoisers/main-s0", "denoisers/delete-s0", "main/direct-s0",
                       "ablation-noise/pretrain-delete-s0", "ablation-noise/composed-delete-s0"}, trained
    ev = next(c for c in cmds if c[2] == "evaluate")
    assert ev[ev.index("--run-dir") + 1] == os.path.join(runs, "main", "direct-s0")
    assert ev[ev.index("--as-run") + 1] == os.path.join(runs, "ablation-noise", "direct-s0")
    assert ev[ev.index("--denoiser") + 1] == os.path.join(runs, "denoisers", "delete-s0")
    assert ev[ev.index("--tag") + 1] == "ablation-noise"


def test_runner_sanstype_variants(tmp_path):
    """The default is the paper's data: the released draw as labeled data, generated test sets beside it,
    a denoiser per seed (Pretrained and Composed of seed s use Π_s); VARIANT=strict keeps the strict
    variant's own data, runs and table, one shared denoiser and its fresh corruption per epoch."""
    cmds = plan("code/runner.sh", "cpu", tmp_path / "a", TARGETS="main", SEEDS="0 1")
    make = next(c for c in cmds if c[2] == "make-sanstype")
    assert make[make.index("--variant") + 1] == "authors" and "--labeled-from" in make
    assert make[make.index("--n-gen") + 1] == "2000"
    for c in cmds:
        if c[2] in ("pretrain", "compose"):
            seed = c[c.index("--seed") + 1]
            assert c[c.index("--denoiser") + 1].endswith(f"denoisers/main-s{seed}"), c
            i = c.index("--eval-splits")
            assert c[i + 1:i + 5] == ["test", "ood", "test_gen", "ood_gen"]
        if c[2] == "denoise":
            assert c[c.index("--noise-draw") + 1] == "fixed"
    assert {c[c.index("--seed") + 1] for c in cmds if c[2] == "denoise"} == {"0", "1"}
    strict = plan("code/runner.sh", "cpu", tmp_path / "s", TARGETS="main", SEEDS="0 1", VARIANT="strict")
    make = next(c for c in strict if c[2] == "make-sanstype")
    assert make[make.index("--variant") + 1] == "strict" and "--labeled-from" not in make
    dens = {c[c.index("--run-dir") + 1] for c in strict if c[2] == "denoise"}
    assert len(dens) == 1 and dens.pop().endswith("denoisers/main")
    assert all(c[c.index("--noise-draw") + 1] == "fresh" for c in strict if c[2] == "denoise")


def test_code_runner_jobs_side_by_side_and_a_failed_stage_stops_it(tmp_path):
    """JOBS=2: Pretrained beside Direct, then Composed beside the control, one thread each, each stage's
    output in RUNS/logs/<stage>.log; a stage that fails stops the runner with its name before the next phase."""
    runs = tmp_path / "runs"
    env = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET="cpu", TARGETS="main", SEEDS="0", JOBS="2",
               RUNS=str(runs), DATA=str(tmp_path / "data"), TABLE=str(tmp_path / "t.md"))
    p = subprocess.run(["bash", "code/runner.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    started = [line.split()[1] for line in p.stdout.splitlines() if line.endswith(".log)")]
    assert started == ["pretrain-s0", "direct-s0", "composed-s0", "continued-s0"]
    assert p.stdout.index("pretrain-s0 finished") < p.stdout.index("composed-s0 started")  # the barrier
    cont = (runs / "logs" / "continued-s0.log").read_text().split("\n")
    assert " compose " in cont[0] and "--reinforce off" in cont[0] and " evaluate " in cont[1]
    fake = tmp_path / "py"  # a python that fails Pretrained's training
    fake.write_text('#!/bin/bash\n[[ " $* " == *" pretrain "* ]] && { echo boom; exit 3; }\necho "$@"\n')
    fake.chmod(0o755)
    p = subprocess.run(["bash", "code/runner.sh"], cwd=REPO, env=dict(env, PY=str(fake)), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "stage pretrain-s0 failed" in p.stderr
    assert "composed-s0 started" not in p.stdout and (runs / "logs" / "pretrain-s0.log").read_text() == "boom\n"


@pytest.mark.parametrize("preset,omp,side_by_side", [("cpu", None, True), ("smoke", None, True),
                                                     ("cpu", "1", False), ("paper", None, False)])
def test_code_runner_jobs_default(preset, omp, side_by_side, tmp_path):
    """JOBS unset: two stages side by side with a CPU preset on >= 2 cores, one at a time when OMP_NUM_THREADS is
    set (a machine shared with other jobs) or with the paper preset (a GPU)."""
    env = {k: v for k, v in os.environ.items() if k not in ("JOBS", "OMP_NUM_THREADS")}
    env.update(PY="echo", PRESETS_PY=sys.executable, PRESET=preset, TARGETS="main", SEEDS="0",
               RUNS=str(tmp_path / "runs"), DATA=str(tmp_path / "data"), TABLE=str(tmp_path / "t.md"))
    if omp:
        env["OMP_NUM_THREADS"] = omp
    p = subprocess.run(["bash", "code/runner.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    started = "pretrain-s0 started" in p.stdout
    assert started == (side_by_side and len(os.sched_getaffinity(0)) >= 2), p.stdout[-1000:]  # nproc


def _fake_tree(tmp_path, fail=None):
    """runner.sh and scripts/jobs.sh in a tree whose environment setup and experiment runners are stand-ins
    that print the threads and JOBS they were given (and, for `fail`, exit 3)."""
    import shutil
    (tmp_path / "scripts").mkdir()
    (tmp_path / "imggen").mkdir()
    (tmp_path / "code").mkdir()
    shutil.copy(os.path.join(REPO, "runner.sh"), tmp_path / "runner.sh")
    shutil.copy(os.path.join(REPO, "scripts", "jobs.sh"), tmp_path / "scripts" / "jobs.sh")
    (tmp_path / "scripts" / "setup_env.sh").write_text("PY=echo\n")
    for exp, path in (("imggen", "imggen/runner.sh"), ("sanstype", "code/runner.sh")):
        body = f'echo "{exp} OMP=${{OMP_NUM_THREADS:-unset}} JOBS=${{JOBS:-unset}}"\n'
        body += "exit 3\n" if exp == fail else ""
        (tmp_path / path).write_text(body)
    return tmp_path


S = {"SIDE_BY_SIDE": "1"}


@pytest.mark.parametrize("env,lanes", [(S, True), ({}, False), ({**S, "THREADS": "1"}, False),
                                       ({**S, "JOBS": "1"}, False), ({**S, "PRESET": "paper"}, False),
                                       ({**S, "EXPERIMENTS": "imggen"}, False)])
def test_top_runner_runs_the_experiments_side_by_side_when_asked(env, lanes, tmp_path):
    """runner.sh with SIDE_BY_SIDE=1: two experiments on a CPU preset run side by side at one thread each, each
    runner told JOBS=1 (its stages one at a time), their output in runs/logs/EXPERIMENT.log; by default, with
    THREADS or JOBS=1 set, the paper preset, or one experiment, one after another, each runner choosing its
    own JOBS."""
    root = _fake_tree(tmp_path)
    e = {k: v for k, v in os.environ.items()
         if k not in ("JOBS", "OMP_NUM_THREADS", "THREADS", "EXPERIMENTS", "SIDE_BY_SIDE")}
    p = subprocess.run(["bash", "runner.sh"], cwd=root, env=dict(e, **env), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    exps = env.get("EXPERIMENTS", "imggen sanstype").split()
    if lanes and len(os.sched_getaffinity(0)) >= 2:
        for exp in exps:
            assert f"runner.sh: {exp} started (log: runs/logs/{exp}.log)" in p.stdout
            log = (root / "runs" / "logs" / f"{exp}.log").read_text()
            assert f"{exp} OMP=1 JOBS=1" in log and f"runner.sh: {exp} finished in" in log
    else:
        assert "started" not in p.stdout
        for exp in exps:
            line = [x for x in p.stdout.splitlines() if x.startswith(exp + " OMP=")][0]
            assert ("JOBS=1" in line) == (env.get("JOBS") == "1")
            assert ("OMP=1" in line) == (env.get("THREADS") == "1")
    assert "archive_runs.py" in p.stdout and "make_report.py" in p.stdout  # PY=echo: the report's commands


def test_top_runner_stops_with_the_failed_experiment(tmp_path):
    root = _fake_tree(tmp_path, fail="imggen")
    e = {k: v for k, v in os.environ.items() if k not in ("JOBS", "OMP_NUM_THREADS", "THREADS", "EXPERIMENTS")}
    p = subprocess.run(["bash", "runner.sh"], cwd=root, env=dict(e, JOBS="2", SIDE_BY_SIDE="1"), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "stage imggen failed (its log: runs/logs/imggen.log)" in p.stderr
    assert "make_report.py" not in p.stdout
