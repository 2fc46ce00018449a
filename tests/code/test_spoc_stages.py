"""SPoC end to end: make-spoc, no test program or problem leaks into training data, and the
smoke preset of code/runner_spoc.sh (every stage, TestW/TestP judged on all test cases)."""
import json
import os
import subprocess
import sys

import pytest
from conftest import require_shared

from composed_ft.code import dataset, spoc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True, scope="module")
def _spoc_data():
    require_shared("spoc", "test", "spoc-testp.tsv")


def test_no_test_program_or_problem_in_training_data():
    data = spoc.load_spoc()
    s = data["splits"]
    test = s["testp"] + s["testw"]
    train = s["train"] + s["valid"]
    test_ids = {(e["probid"], e["subid"]) for e in test}
    assert not test_ids & {(e["probid"], e["subid"]) for e in train}
    # a few training programs have exactly a test program's code (related problems): make-spoc drops them
    kept, dropped = spoc.without_test_programs(train, test)
    assert dropped > 0 and not {e["tgt"] for e in test} & {e["tgt"] for e in kept}
    # TestP is unseen problems: none of them in training; (TestW shares problems with train by design)
    assert not {e["probid"] for e in s["testp"]} & {e["probid"] for e in train}
    extra = spoc.load_codeforces_extra(exclude_probids=spoc.test_problem_ids())
    assert len(extra) > 500
    assert not {e["probid"] for e in extra} & {e["probid"] for e in test}
    everything = spoc.load_codeforces_extra()
    assert len(everything) > len(extra)  # the exclusion actually removed some programs


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("spoc")
    env = dict(os.environ, PY=sys.executable, PRESET="smoke", RUNS=str(root / "runs"), DATA=str(root / "data"),
               TABLE=str(root / "spoc.md"), OMP_NUM_THREADS="1", DEVICE="cpu")
    p = subprocess.run(["bash", "code/runner_spoc.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return root


@pytest.mark.slow  # code/runner_spoc.sh end to end at the smoke preset: minutes (`bash scripts/test.sh -m slow`)
def test_make_spoc_layout_and_no_leak(smoke):
    d = smoke / "data"
    man = json.load(open(d / "dataset.json"))
    assert man["dataset"] == "spoc" and man["judge_std"] == "gnu++11" and man["eval_splits"] == ["testw", "testp"]
    assert "eval" in man["note"]  # the fallback mapping is stated
    tests = {e["tgt"] for k in ("testp", "testw") for e in dataset.load_split(str(d), k)}
    for split in ("train", "val", "unlabeled", "unlabeled_val"):
        exs = dataset.load_split(str(d), split)
        assert exs and not {e["tgt"] for e in exs} & tests, split
    unl = dataset.load_split(str(d), "unlabeled")
    assert all(e["src"] != e["tgt"] for e in unl)  # every unlabeled input is a corrupted copy
    probids = open(d / "testp.probid").read().split()
    assert len(probids) == len(dataset.load_split(str(d), "testp"))


@pytest.mark.slow
def test_runner_smoke_every_stage(smoke):
    runs = smoke / "runs"
    for name in ("direct", "pretrain", "composed"):
        res = json.load(open(runs / "main" / f"{name}-s0" / "results.json"))
        assert set(res["eval"]) == {"testw", "testp"}
        for split in ("testw", "testp"):
            recs = [json.loads(line) for line in open(runs / "main" / f"{name}-s0" / f"eval_{split}.jsonl")]
            for kind in ("base", "denoised"):  # the summary is the per-program records, counted
                s = res["eval"][split][kind]
                assert s["n"] == len(recs) == 4
                assert s["accuracy"] == sum(x[kind]["outcome"] == "correct" for x in recs) / 4
                assert s["hit_limit"] == sum(x[kind]["hit_limit"] for x in recs)
        assert "eval" in res["data_note"]
    # every test case of the problem is judged, not just one
    row = json.loads(open(runs / "main" / "direct-s0" / "eval_testp.jsonl").readline())
    assert row["base"]["outcome"] in ("correct", "compile_error", "runtime_error", "timeout", "wrong_output")
    den = json.load(open(runs / "denoisers" / "main" / "results.json"))
    assert den["noise"] == "given"
    # the smoke preset runs the optional line-wise stage first and starts the full-program Π from it
    lines = json.load(open(runs / "denoisers" / "lines" / "results.json"))
    assert lines["noise"] == "given-lines" and lines["n_unlabeled"] > 0
    cfg = json.load(open(runs / "denoisers" / "main" / "config.json"))["config"]
    assert cfg["init"].endswith("denoisers/lines") and cfg["init_stage"] == "denoise"
    # the smoke preset sets --max-positions 512; composed f takes it from Pretrained, Pretrained from Π
    for name in ("denoisers/main", "main/direct-s0", "main/pretrain-s0", "main/composed-s0"):
        assert json.load(open(runs / name / "config.json"))["config"]["max_positions"] == 512, name
    for split in ("testw", "testp"):
        assert res["eval"][split]["gated"]["n"] == 4
    table = open(smoke / "spoc.md").read()
    assert "TestW (ID) accuracy" in table and "TestP (OOD) accuracy" in table and "Gold ceiling" in table
    assert "spoc-train-eval" in table  # which split mapping trained the models
