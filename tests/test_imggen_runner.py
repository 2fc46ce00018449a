"""imggen/runner.sh's plan (PY=echo prints the commands instead of running them): the two Direct
baselines and Composed of the main table, ablations that reuse the main runs as their reference rows,
and the probes that are not part of `all`."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plan(tmp_path, **env):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "fonts32.npz"
    data.touch()  # present: the runner would otherwise install fonts
    e = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET="cpu", SEEDS="0", RUNS=str(tmp_path / "runs"),
             DATA=str(data), TABLE=str(tmp_path / "t.md"), JOBS="1")
    e.update(env)
    p = subprocess.run(["bash", "imggen/runner.sh"], cwd=REPO, env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    cmds = [line.split() for line in p.stdout.splitlines() if line.startswith("-m composed_ft.imggen")]
    runs = str(tmp_path / "runs") + "/"
    return {c[c.index("--run-dir") + 1].replace(runs, ""): c for c in cmds if "--run-dir" in c}


def flag(cmd, name):
    """The last value of a flag, given as `--flag value` or `--flag=value` (argparse keeps the last), or None."""
    pos = [i for i, a in enumerate(cmd) if a == name or a.startswith(name + "=")]
    if not pos:
        return None
    last = cmd[pos[-1]]
    return last.split("=", 1)[1] if "=" in last else cmd[pos[-1] + 1]


def test_main_table_plans_both_directs_and_composed(tmp_path):
    runs = plan(tmp_path, TARGETS="main", SEEDS="0 1")
    for n in (2500, 500):
        for s in (0, 1):
            d, c, st = (runs[f"main/{m}-n{n}-s{s}"] for m in ("direct", "composed", "direct_strong"))
            assert flag(d, "--method") == "direct" and flag(d, "--variant") == "authors"
            assert flag(c, "--method") == "composed"
            # the presets hold the authors' losses; the strongest Direct overrides them, at the same budget
            assert flag(d, "--dropout") is None and flag(c, "--l2") is None and flag(d, "--bn-eps") is None
            # the strongest Direct: the authors' f (their BN eps and λ 0) with dropout 0.5
            assert flag(st, "--variant") == "strong" and flag(st, "--dropout") == "0.5"
            assert flag(st, "--bn-eps") is None and flag(st, "--l2") is None
            assert flag(st, "--max-epoch") == flag(d, "--max-epoch")
    assert set(runs) == {f"main/{m}-n{n}-s{s}" for m in ("direct", "composed", "direct_strong")
                         for n in (2500, 500) for s in (0, 1)} | {"denoisers/blur2"}
    # budgets from the environment reach the right method
    runs = plan(tmp_path / "e", TARGETS="main", EPOCHS_DIRECT="7", EPOCHS_COMPOSED="9", DEN_UPDATES="11")
    assert flag(runs["main/direct-n500-s0"], "--max-epoch") == "7"
    assert flag(runs["main/direct_strong-n500-s0"], "--max-epoch") == "7"
    assert flag(runs["main/composed-n500-s0"], "--max-epoch") == "9"
    assert flag(runs["main/composed-n500-s0"], "--max-update") == "0"  # epochs given: the preset's updates lifted
    assert flag(runs["denoisers/blur2"], "--max-update") == "11"
    runs = plan(tmp_path / "u", TARGETS="main", UPDATES_COMPOSED="13", EPOCHS="5")
    assert flag(runs["main/composed-n2500-s0"], "--max-update") == "13"  # updates win over epochs
    assert flag(runs["main/direct-n2500-s0"], "--max-epoch") == "5"
    # by default the budgets are the preset's: per method, Composed's in updates at every labeled size
    runs = plan(tmp_path / "p", TARGETS="main")
    from composed_ft.imggen.__main__ import parse as parse_cli
    d, c = (parse_cli(runs[f"main/{m}-n500-s0"][2:]).config for m in ("direct", "composed"))
    assert flag(runs["main/composed-n500-s0"], "--max-update") is None and c.max_update > 0 and not d.max_update
    # OVERWRITE=1: every stage retrains a changed setting (the old run moved aside)
    assert all("--overwrite" in c for c in plan(tmp_path / "o", TARGETS="main", OVERWRITE="1").values())
    assert not any("--overwrite" in c for c in runs.values())
    # the layout is the flag's default (the authors'), not repeated by the runner
    assert flag(runs["denoisers/blur2"], "--unet-layout") is None
    from composed_ft.imggen.__main__ import parse
    assert parse(runs["denoisers/blur2"][2:]).config.unet_layout == "authors"


def test_ablations_reuse_the_main_runs_and_skip_the_main_settings(tmp_path):
    runs = plan(tmp_path, TARGETS="blur l2 labeled perturb unlabeled dropout")
    main = {k for k in runs if k.startswith("main/")}
    assert main == {f"main/{m}-n{n}-s0" for m in ("direct", "composed") for n in (2500, 500)}  # references only
    assert "ablation-blur/composed-blur2-s0" not in runs and "ablation-blur/composed-blur8-s0" in runs
    assert flag(runs["ablation-blur/composed-blur8-s0"], "--denoiser").endswith("denoisers/blur8")
    assert "ablation-l2/composed-l2_1e-4-s0" not in runs and "ablation-l2/direct-l2_1e-4-s0" in runs
    assert flag(runs["ablation-l2/composed-l2_1e-1-s0"], "--l2") == "1e-1"
    assert {k for k in runs if k.startswith("ablation-labeled/")} == {
        f"ablation-labeled/{m}-n{n}-s0" for m in ("direct", "composed") for n in (1500, 4500)}
    assert "ablation-perturb/composed-blur-s0" not in runs and "ablation-perturb/composed-emboss-s0" in runs
    assert flag(runs["ablation-unlabeled/composed-fonts100-s0"], "--denoiser").endswith("denoisers/fonts100")
    assert flag(runs["denoisers/fonts100"], "--unlabeled-fonts") == "100"
    do = runs["ablation-dropout/composed-do0.3-s0"]
    assert flag(do, "--l2") == "0" and flag(do, "--dropout") == "0.3"


def test_probes_run_one_seed_and_are_not_part_of_all(tmp_path):
    runs = plan(tmp_path, TARGETS="budget candidates", SEEDS="3 4")
    assert not any(k.startswith("main/") for k in runs)  # probes come before the main runs
    assert {k.split("/")[0] for k in runs} == {"budget", "candidates", "denoisers"}
    assert all(k.endswith("-s3") for k in runs if not k.startswith("denoisers"))
    assert flag(runs["budget/composed-n2500-e1000-s3"], "--max-epoch") == "1000"
    assert flag(runs["budget/composed-n500-e5000-s3"], "--max-epoch") == "5000"  # the same number of updates
    assert flag(runs["budget/direct-n500-e5000-s3"], "--max-update") == "0"  # a probe's length is its epochs
    assert flag(runs["candidates/direct-eps1e-5_do0.1-s3"], "--bn-eps") == "1e-5"
    assert not any(k.split("/")[0] in ("budget", "candidates") for k in plan(tmp_path / "a", TARGETS="all"))


def test_cpu_ablations_run_composed_shorter_and_keep_the_main_runs_snapshot(tmp_path):
    """At the cpu preset the ablations' Composed runs get ABL_UPDATES_COMPOSED (6,000); a new main Composed
    run is then trained to that budget first and continued (--extend) to the preset's, so its results at
    the ablations' budget are kept as their reference row."""
    e = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET="cpu", SEEDS="0 1", RUNS=str(tmp_path / "runs"),
             DATA=str(tmp_path / "fonts32.npz"), TABLE=str(tmp_path / "t.md"), TARGETS="main blur")
    (tmp_path / "fonts32.npz").touch()
    (tmp_path / "runs/main/composed-n500-s1").mkdir(parents=True)
    (tmp_path / "runs/main/composed-n500-s1/config.json").write_text("{}")  # an existing run: not restarted short
    p = subprocess.run(["bash", "imggen/runner.sh"], cwd=REPO, env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    cmds = [line.split() for line in p.stdout.splitlines() if line.startswith("-m composed_ft.imggen train")]
    main = [c for c in cmds if flag(c, "--run-dir").endswith("main/composed-n500-s0")]
    assert [(flag(c, "--max-update"), "--extend" in c) for c in main] == [("6000", False), (None, True)]
    other = [c for c in cmds if flag(c, "--run-dir").endswith("main/composed-n500-s1")]
    assert [(flag(c, "--max-update"), "--extend" in c) for c in other] == [(None, True)]
    from composed_ft.imggen.__main__ import parse
    assert parse(main[1][2:]).config.max_update == 32000  # the preset's budget
    assert flag(plan(tmp_path / "b", TARGETS="blur")["ablation-blur/composed-blur8-s0"], "--max-update") == "6000"
    # without ablations the main run is trained once, to the preset's budget; at the paper preset the
    # ablations use the preset's budget too
    runs = plan(tmp_path / "m", TARGETS="main")
    c = runs["main/composed-n500-s0"]
    assert flag(c, "--max-update") is None and "--extend" not in c
    runs = plan(tmp_path / "p", TARGETS="blur", PRESET="paper")
    assert flag(runs["ablation-blur/composed-blur8-s0"], "--max-update") is None


def commands(tmp_path, stages=("train",), **env):
    """Every planned command of `stages`, in order (a run dir can have two: trained short, then extended)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "fonts32.npz").touch()
    e = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET="cpu", SEEDS="0", RUNS=str(tmp_path / "runs"),
             DATA=str(tmp_path / "fonts32.npz"), TABLE=str(tmp_path / "t.md"))
    e.update(env)
    p = subprocess.run(["bash", "imggen/runner.sh"], cwd=REPO, env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    cmds = [line.split() for line in p.stdout.splitlines()]
    return [c for c in cmds if c[:2] == ["-m", "composed_ft.imggen"] and c[2] in stages]


def test_a_budget_the_user_sets_reaches_the_ablations_and_none_is_appended_after_it(tmp_path):
    """`EPOCHS_COMPOSED=10 TARGETS=blur` once planned `--max-epoch 10 ... --max-update 6000`: the ablation
    budget appended after the user's, so the user's never reached the ablation runs. A command carries one
    budget: the user's Composed budget is the ablations' too, unless ABL_UPDATES_COMPOSED says otherwise."""
    targets = "main budget blur labeled"
    for i, env in enumerate([{}, dict(EPOCHS_COMPOSED="10"), dict(UPDATES="77"), dict(EPOCHS_DIRECT="7"),
                             dict(ABL_UPDATES_COMPOSED="55", EPOCHS_COMPOSED="10"), dict(ABL_UPDATES_COMPOSED="0")]):
        cmds = commands(tmp_path / str(i), TARGETS=targets, **env)
        for c in cmds:
            assert c.count("--max-epoch") <= 1 and c.count("--max-update") <= 1, (env, c)
        abl = [c for c in cmds if flag(c, "--tag").startswith("ablation") and flag(c, "--method") == "composed"]
        main = [c for c in cmds if flag(c, "--tag") == "main" and flag(c, "--method") == "composed"]
        assert abl and main
        budgets = {(flag(c, "--max-epoch"), flag(c, "--max-update")) for c in abl}
        if env.get("ABL_UPDATES_COMPOSED") == "55":
            assert budgets == {(None, "55")} and {flag(c, "--max-epoch") for c in main} == {"10"}
        elif "EPOCHS_COMPOSED" in env:
            assert budgets == {("10", "0")}
            assert {(flag(c, "--max-epoch"), flag(c, "--max-update")) for c in main} == {("10", "0")}
        elif "UPDATES" in env:
            assert budgets == {(None, "77")}
        elif env.get("ABL_UPDATES_COMPOSED") == "0":  # the main runs' budget: the preset's
            assert budgets == {(None, None)} and not any("--extend" in c for c in main)
        else:  # the preset's ablation budget (cpu: 6,000 updates)
            assert budgets == {(None, "6000")}
        # the probes keep their own lengths, and only those
        probes = [c for c in cmds if flag(c, "--tag") == "budget"]
        assert probes and all(flag(c, "--max-update") == "0" and flag(c, "--max-epoch") in ("1000", "5000")
                              for c in probes)


def test_the_archived_runs_compare_equal_to_what_the_runner_plans_today(tmp_path):
    """Every archived cpu run (results/runs/imggen/cpu) holds the settings today's runner resolves for it
    (the runner's last command for its run directory, at RUNS=runs/imggen/cpu): rerunning the runner over
    them is a no-op, never a refusal."""
    from composed_ft.core.runs import Run
    from composed_ft.imggen.__main__ import parse
    from composed_ft.imggen.config import comparable
    archive = os.path.join(REPO, "results/runs/imggen/cpu")
    cmds = commands(tmp_path, ("denoise", "train"), RUNS="runs/imggen/cpu", SEEDS="0 1 2",
                    TARGETS="main blur l2 unlabeled labeled dropout perturb")
    data = str(tmp_path / "fonts32.npz")
    # the runner's last word on each run, with the data path the archived runs were made with
    last = {flag(c, "--run-dir"): [a if a != data else "data/fonts/fonts32.npz" for a in c] for c in cmds}
    compared = 0
    for run_dir, c in last.items():
        path = os.path.join(archive, os.path.relpath(run_dir, "runs/imggen/cpu"))
        if os.path.exists(os.path.join(path, "config.json")):
            cfg = parse(c[2:]).config
            assert Run(path, cfg.to_dict()).differences(upgrade=comparable) == {}, path
            compared += 1
    assert compared >= 50


def test_main_runs_side_by_side_with_jobs_and_a_failed_stage_stops_the_runner(tmp_path):
    """JOBS=2: once Π exists, the main runs two at a time (the Composed runs first), one seed and one thread
    each, each stage's output in RUNS/logs/<stage>.log; the table waits for them all; a failing stage stops
    the runner with its name."""
    data = tmp_path / "fonts32.npz"
    data.touch()
    runs = tmp_path / "runs"
    env = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET="cpu", SEEDS="0 1", RUNS=str(runs),
               DATA=str(data), TABLE=str(tmp_path / "t.md"), JOBS="2")
    p = subprocess.run(["bash", "imggen/runner.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    started = [line.split()[1] for line in p.stdout.splitlines() if line.endswith(".log)")]
    assert started[:4] == ["composed-n2500-s0", "composed-n2500-s1", "composed-n500-s0", "composed-n500-s1"]
    assert len(started) == 12 and "direct_strong-n500-s1" in started
    assert p.stdout.index("denoise") < p.stdout.index("started")  # Π first, in the foreground
    assert p.stdout.rindex("finished") < p.stdout.index(" table ")  # the table after every stage
    for name in started:
        log = (runs / "logs" / f"{name}.log").read_text().split()
        seed = name.rsplit("-s", 1)[1]
        assert log[log.index("--seed") + 1] == seed and log.count("--seed") == 1
        n = name.split("-n")[1].split("-")[0]
        assert flag(log, "--n-train") == n
    fake = tmp_path / "py"  # a python whose Composed at 500 labels fails
    fake.write_text('#!/bin/bash\n[[ " $* " == *"composed-n500-s0"* ]] && { echo boom; exit 3; }\necho "$@"\n')
    fake.chmod(0o755)
    p = subprocess.run(["bash", "imggen/runner.sh"], cwd=REPO, env=dict(env, PY=str(fake), PRESETS_PY=sys.executable),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "stage composed-n500-s0 failed" in p.stderr
    assert " table " not in p.stdout
