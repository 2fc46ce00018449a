"""scripts/make_report.py: REPORT.md and its figures built from (tiny, hand-written) run directories."""
import json
import os

import pytest
from conftest import load_script
from PIL import Image

from composed_ft.core import tables
from composed_ft.core.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def objective(stage):
    """A fake Composed run's objective: the authors' (the paper's row; a config without it is an older run's,
    the equation as written)."""
    return {"logp_sum": "padded", "logp_mode": "eval"} if stage == "compose" else {}


@pytest.fixture(scope="module")
def make_report():
    return load_script("make_report")


def fake_run(path, config, results, metrics=(), samples=False):
    """A finished run directory in the format composed_ft.core.runs.Run writes."""
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"config": {"preset": "cpu", **config}, "git_commit": "0123456789abcdef" * 2 + "01234567",
                   "argv": [], "created": "2026-01-01 00:00:00"}, f)
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump(results, f)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(m) + "\n" for m in metrics)
    if samples:
        Image.new("L", (8, 8), 128).save(os.path.join(path, "samples.png"))


# imggen test MSE per (method, n_train, kind): one value per seed 0, 1
MSE = {("direct", 200): {"test_mse_base": [0.30, 0.32], "test_mse_denoised": [0.35, 0.37]},
       ("composed", 200): {"test_mse_base": [0.50, 0.52], "test_mse_denoised": [0.20, 0.22]},
       ("direct", 100): {"test_mse_base": [0.40, 0.44], "test_mse_denoised": [0.45, 0.47]},
       ("composed", 100): {"test_mse_base": [0.60, 0.62], "test_mse_denoised": [0.30, 0.34]}}
# SansType accuracy per (stage, split, kind): one value per seed 0, 1 (of 100 programs)
ACC = {("direct", "test", "base"): [0.40, 0.44], ("direct", "test", "denoised"): [0.41, 0.45],
       ("direct", "ood", "base"): [0.10, 0.12], ("direct", "ood", "denoised"): [0.11, 0.13],
       ("pretrain", "test", "base"): [0.50, 0.52], ("pretrain", "test", "denoised"): [0.53, 0.55],
       ("pretrain", "ood", "base"): [0.20, 0.22], ("pretrain", "ood", "denoised"): [0.25, 0.25],
       ("compose", "test", "base"): [0.30, 0.30], ("compose", "test", "denoised"): [0.56, 0.58],
       ("compose", "ood", "base"): [0.05, 0.07], ("compose", "ood", "denoised"): [0.30, 0.34]}


@pytest.fixture
def runs(tmp_path):
    img = tmp_path / "runs" / "imggen" / "cpu"
    fake_run(img / "denoisers" / "blur2", {"stage": "denoise", "seed": 0}, {"wall_s": 100.0, "n_unlabeled": 10})
    for (method, n), vals in MSE.items():
        for seed in (0, 1):
            curve = [{"epoch": e, "val_mse": 1 / e, "val_mse_base": 1 / e, "val_mse_denoised": 0.5 / e}
                     for e in (1, 2, 3)]
            fake_run(img / "main" / f"{method}-n{n}-s{seed}",
                     {"stage": "train", "tag": "main", "method": method, "n_train": n, "seed": seed},
                     {"method": method, "n_train": n, "n_test": 50, "wall_s": 10.0,
                      **{k: v[seed] for k, v in vals.items()}}, curve, samples=True)
    st = tmp_path / "runs" / "sanstype" / "cpu"
    fake_run(st / "denoisers" / "main", {"stage": "denoise", "seed": 0}, {"method": "denoise", "wall_s": 50.0})
    for stage, name in (("direct", "direct"), ("pretrain", "pretrain"), ("compose", "composed")):
        for seed in (0, 1):
            acc = {(split, kind): ACC[(stage, split, kind)][seed] for split in ("test", "ood")
                   for kind in ("base", "denoised")}
            extra = {"init_stage": "pretrain"} if stage == "compose" else {}
            curve = [{"epoch": e, "val_nll": 1 / e, **({"val_pi_nll": 2 / e} if stage == "compose" else {})}
                     for e in (1, 2)]
            code_run(st / "main" / f"{name}-s{seed}", {"stage": stage, "tag": "main", "seed": seed, **objective(stage)},
                     acc, 100,
                     {"wall_s": 20.0, **extra}, curve)
    return tmp_path / "runs"


def code_run(path, config, acc, n, results=(), metrics=()):
    """A finished predictor run with `n` programs per split, programs 0..k-1 correct for accuracy k/n of
    each (split, row kind) in `acc`, and the per-program records the claims are tested on."""
    splits = sorted({sp for sp, _ in acc})
    ev = {sp: {"n": n, **{kind: {"accuracy": a, "compile_error_rate": 1 - a} for (s, kind), a in acc.items()
                          if s == sp}} for sp in splits}
    fake_run(path, config, {"stage": config["stage"], "method": config["stage"], "eval": ev, **dict(results)},
             metrics)
    for sp in splits:
        recs = [{"index": i, "gold": "g", **{kind: {"outcome": "correct" if i < round(a * n) else "compile_error",
                                                    "pred": "p", "hit_limit": False}
                                              for (s, kind), a in acc.items() if s == sp}} for i in range(n)]
        with open(os.path.join(path, f"eval_{sp}.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)


def claims_of(text, heading):
    """The claims subsection of the experiment section that starts with `heading`."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return section.split("### The paper's claims", 1)[1].split("\n### ", 1)[0]


def test_report_tables_claims_figures_and_provenance(make_report, runs, tmp_path, monkeypatch):
    monkeypatch.setattr(make_report, "describe", lambda: "test machine")  # skip importing torch
    out = tmp_path / "results" / "REPORT.md"
    assert make_report.main(["--runs", str(runs), "--out", str(out)]) == 0
    text = out.read_text()

    # imggen: mean ± std per labeled size and model, and the 95% CI from core.tables
    assert "| 200 | Direct f(x) | 0.3100 ± 0.0141 |" in text  # no eps 0.8 in the config: the earlier setting
    assert "| 200 | Composed Π(f(x)) | 0.2100 ± 0.0141 |" in text
    assert "| 100 | Composed Π(f(x)) | 0.3200 ± 0.0283 |" in text
    h = tables.ci95([0.20, 0.22])
    assert f"| 0.2100 ± 0.0141 | [{0.21 - h:.4f}, {0.21 + h:.4f}] | 0 1 |" in text
    # SansType: accuracy in %, both splits
    assert "| Direct | 42.0 ± 2.8 |" in text
    assert "| Pretrained + Π | 54.0 ± 1.4 |" in text
    assert "| Composed (from Pretrained) Π(f(x)) | 57.0 ± 1.4 |" in text
    assert "| Composed (from Pretrained) f(x) | 30.0 ± 0.0 |" in text
    # SPoC has no runs: one line, no section
    assert "no finished runs under" in text and "SPoC" in text and "## SPoC" not in text

    # claims, inside each experiment's section: composed beats direct / pretrained by the right relative amounts
    assert text.count("### The paper's claims beside our measurements") == 2
    claims = claims_of(text, "## Font image generation")
    row = next(line for line in claims.splitlines() if "200 labeled: Composed Π(f(x)) vs" in line)
    assert "0.3100 → 0.2100" in row and "-32.3% rel." in row and row.rstrip(" |").endswith("yes")
    claims = claims_of(text, "## SansType")
    row = next(line for line in claims.splitlines() if "ID test: Composed" in line)
    # (composed_ft/code/report_section.py, written per program: 6 programs gained on each seed, none lost)
    assert "51.0 → 57.0 (+6.0 pts, 95% CI [" in row and "100 programs × 2 seeds" in row
    assert f"| {tables.mcnemar_p(0, 12):.2g} (12 / 0) |" in row and row.rstrip(" |").endswith("| yes")
    row = next(line for line in claims.splitlines() if "OOD test vs ID test" in line)
    assert "relative gain OOD +52.4% vs ID +11.8%" in row
    assert sum("Pretrained > Direct" in line for line in claims.splitlines()) == 2
    assert sum("Pretrained + Π > Pretrained" in line for line in claims.splitlines()) == 2

    # the report opens with the verdict: a line per claim row, the counts per experiment
    assert text.index("## Verdict") < text.index("## Font image generation")
    verdict = text[text.index("## Verdict"):text.index("## Font image generation")]
    assert "| imggen | 200 labeled: Composed Π(f(x)) vs Direct f(x), test MSE | Composed has lower test MSE " \
           "than Direct | 0.3100 → 0.2100 (-0.1000, -32.3% rel.; paired 95% CI [" in verdict
    row = next(line for line in verdict.splitlines() if "| sanstype | ID test: Composed" in line)
    assert "| 51.0 → 57.0 (+6.0 pts, 95% CI [" in row and row.endswith("]) | yes |")
    n_claims = sum(line.startswith("| ") for line in claims.splitlines()) - 1  # the section's rows, less the header
    assert sum(line.startswith("| sanstype | ") for line in verdict.splitlines()) == n_claims + 1  # + its count row
    assert f"| sanstype | {n_claims} | {n_claims} | 0 | 0 | 0 |" in verdict  # claim rows, yes, no, unresolved, ...
    assert "| **all** |" in verdict

    # figures: PNGs beside the report, linked relatively
    figs = out.parent / "figures"
    for name in ("imggen_samples_direct.png", "imggen_samples_composed.png", "imggen_val_curves.png",
                 "sanstype_accuracy.png", "sanstype_val_curves.png"):
        assert (figs / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"](figures/{name})" in text

    # provenance: machine, versions, seeds, commits, wall time per stage and in total
    assert "test machine" in text and "sentencepiece" in text and "transformers" in text
    assert "seeds 0 1" in text and "0123456789ab" in text
    assert "| imggen | main | composed | 4 | 0.7 min | 0123456789ab |" in text
    assert "| sanstype | — | denoiser Π | 1 | 0.8 min | 0123456789ab |" in text
    assert "Total: 5.8 min over 16 runs." in text
    assert not [f for f in os.listdir(out.parent) if f.endswith(".tmp")]  # atomic writes leave nothing behind


def test_missing_runs_root_is_one_clear_error(make_report, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        make_report.main(["--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "R.md")])
    assert e.value.code == 2
    assert "runs root not found" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_preset_overrides(make_report):
    assert make_report.parse_presets(["paper", "imggen=cpu-300ep"]) == {"*": "paper", "imggen": "cpu-300ep"}
    with pytest.raises(UserError):
        make_report.parse_presets(["images=cpu"])


def test_spoc_uses_testw_testp_and_reports_the_data_note(make_report, tmp_path, monkeypatch):
    monkeypatch.setattr(make_report, "describe", lambda: "test machine")
    root = tmp_path / "runs" / "spoc" / "paper"
    acc = {"direct": (0.30, 0.10), "pretrain": (0.40, 0.20), "compose": (0.42, 0.25)}
    for stage, (w, p) in acc.items():
        code_run(root / "main" / f"{stage}-s0", {"stage": stage, "tag": "main", "seed": 0, **objective(stage)},
                 {("testw", "base"): w, ("testw", "denoised"): w + 0.01, ("testp", "base"): p,
                  ("testp", "denoised"): p + 0.01}, 100,
                 {"wall_s": 1.0, "note": "fallback split mapping from /elsewhere/shared/data/spoc",
                  **({"init_stage": "pretrain"} if stage == "compose" else {})})
    out = tmp_path / "R.md"
    make_report.main(["--runs", str(tmp_path / "runs"), "--preset", "spoc=paper", "--out", str(out)])
    text = out.read_text()
    assert "| Pretrained | 40.0 | — (1 seed) | 20.0 | — (1 seed) | 0 |" in text
    assert "TestW (ID) % (mean ± std)" in text and "TestP (OOD) % (mean ± std)" in text
    # another machine's absolute path to the shared data is named as ../shared
    assert "Data: fallback split mapping from ../shared/data/spoc." in text and "Gold ceiling: not measured" in text
    row = next(line for line in claims_of(text, "## SPoC").splitlines() if "TestP (OOD): Composed" in line)
    assert "20.0 → 26.0 (+6.0 pts, 95% CI [" in row and f"| {tables.mcnemar_p(0, 6):.2g} (6 / 0) |" in row
    assert row.rstrip(" |").endswith("| yes")
    assert "Pretrained > Direct" not in text  # a SansType-only claim
    assert text.count("no finished runs under") == 3  # imggen and both SansTypes skipped
    assert (tmp_path / "figures" / "spoc_accuracy.png").exists()


def test_archived_records_rebuild_the_same_report(make_report, runs, tmp_path, monkeypatch):
    """scripts/archive_runs.py keeps only the records (compressed, per-example records packed), yet the
    report built from them is the same."""
    archive_runs = load_script("archive_runs")
    monkeypatch.setattr(make_report, "describe", lambda: "test machine")
    monkeypatch.setattr(make_report.time, "strftime", lambda *a: "2026-01-01 00:00")
    # a checkpoint must not be archived, an unfinished run neither; per-program records are, packed
    (runs / "sanstype" / "cpu" / "main" / "direct-s0" / "checkpoint_best.pt").write_bytes(b"x" * 1000)
    (runs / "sanstype" / "cpu" / "main" / "direct-s0" / "eval_test.jsonl").write_text('{"index": 0}\n')
    (runs / "sanstype" / "cpu" / "main" / "direct-s1" / "eval_test.jsonl").write_text('{"index": 0}\n{"index": 1}\n')
    (runs / "sanstype" / "cpu" / "main" / "direct-s0" / "eval_beam0_last.json").write_text('{"val": {}}')
    # an ablation's picture is read by nothing: it stays in runs/
    fake_run(str(runs / "imggen" / "cpu" / "ablation-l2" / "composed-s0"),
             {"stage": "train", "tag": "ablation-l2", "method": "composed", "n_train": 200, "seed": 0},
             {"method": "composed", "n_train": 200, "n_test": 50, "wall_s": 10.0, "test_mse_base": 0.5,
              "test_mse_denoised": 0.2}, samples=True)
    unfinished = runs / "sanstype" / "cpu" / "main" / "direct-s9"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    archive = tmp_path / "archive"
    done = archive_runs.archive(str(runs), str(archive))
    assert len(done) == 17 and "sanstype/cpu/main/direct-s9" not in done
    kept = {os.path.relpath(os.path.join(d, f), archive) for d, _, fs in os.walk(archive) for f in fs}
    assert "sanstype/cpu/main/direct-s0/results.json" in kept
    assert "sanstype/cpu/main/direct-s0/eval_beam0_last.json" in kept  # a re-evaluation's summary
    assert "sanstype/cpu/main/direct-s0/metrics.jsonl.xz" in kept
    assert "imggen/cpu/main/composed-n200-s1/samples.png" in kept
    assert "imggen/cpu/ablation-l2/composed-s0/results.json" in kept
    assert not [k for k in kept if k.endswith((".pt", ".jsonl", ".gz")) or "direct-s9" in k
                or k == "imggen/cpu/ablation-l2/composed-s0/samples.png"]
    pack = archive / "sanstype" / "packed" / "eval_test.jsonl.xz"
    assert os.path.exists(pack) and "sanstype/packed/eval_test.jsonl.xz" in kept
    from composed_ft.code.error_analysis import read_records
    run_dir = archive / "sanstype" / "cpu" / "main"
    assert read_records(str(run_dir / "direct-s0"), "test") == [{"index": 0}]
    assert read_records(str(run_dir / "direct-s1"), "test") == [{"index": 0}, {"index": 1}]
    assert read_records(str(run_dir / "direct-s0"), "test") == [{"index": 0}]  # asked again
    with pytest.raises(UserError, match="no evaluation records"):
        read_records(str(run_dir / "direct-s9"), "test")  # not in the pack
    from composed_ft.core.runs import read_jsonl
    metrics = os.path.join("sanstype", "cpu", "main", "direct-s0", "metrics.jsonl")
    assert read_jsonl(str(archive / metrics)) == read_jsonl(str(runs / metrics))
    first = {k: (archive / k).read_bytes() for k in kept}
    archive_runs.archive(str(runs), str(archive))
    assert {k: (archive / k).read_bytes() for k in kept} == first  # deterministic: re-archiving changes nothing

    out_runs, out_arch = tmp_path / "a" / "REPORT.md", tmp_path / "b" / "REPORT.md"
    make_report.main(["--runs", str(runs), "--out", str(out_runs)])
    make_report.main(["--runs", str(archive), "--out", str(out_arch)])
    def strip(p):  # the same text up to the roots and output paths named in it
        return (p.read_text().replace(str(runs), "ROOT").replace(str(archive), "ROOT")
                .replace(str(p), "OUT"))
    assert strip(out_runs) == strip(out_arch)
    # archiving again after the run directory is gone keeps the records
    import shutil
    shutil.rmtree(runs / "imggen")
    shutil.rmtree(runs / "sanstype" / "cpu" / "main" / "direct-s1")
    (runs / "sanstype" / "cpu" / "main" / "direct-s0" / "eval_test.jsonl").write_text('{"index": 5}\n')
    archive_runs.archive(str(runs), str(archive))
    assert (archive / "imggen" / "cpu" / "main" / "composed-n200-s1" / "results.json").exists()
    assert read_records(str(run_dir / "direct-s1"), "test") == [{"index": 0}, {"index": 1}]
    assert read_records(str(run_dir / "direct-s0"), "test") == [{"index": 5}]  # a run archived again replaces its own


def test_wall_time_of_a_run_resumed_before_train_s_existed(make_report, tmp_path):
    """A run killed after training and resumed for evaluation (older trainer: no train_s) recorded
    only its last process in wall_s; the report adds the epochs' times from metrics.jsonl that the
    last process did not run — never those it did (the imggen denoiser resumed for its second epoch
    was counted 703 s twice)."""
    ep = [{"epoch": i, "epoch_s": 100.0} for i in (1, 2, 3)]
    fake_run(str(tmp_path / "old"), {"stage": "direct", "seed": 0}, {"epochs": 3, "wall_s": 50.0}, metrics=ep)
    fake_run(str(tmp_path / "last_epoch"), {"stage": "denoise", "seed": 0}, {"epochs": 3, "wall_s": 130.0},
             metrics=ep)
    fake_run(str(tmp_path / "whole"), {"stage": "direct", "seed": 0}, {"epochs": 3, "wall_s": 400.0}, metrics=ep)
    fake_run(str(tmp_path / "new"), {"stage": "direct", "seed": 0},
             {"epochs": 3, "wall_s": 350.0, "train_s": 310.0, "resumed_train_s": 200.0}, metrics=ep)
    runs = {os.path.basename(r["path"]): r for r in tables.collect(str(tmp_path / "*"))}
    assert make_report.run_wall_s(runs["old"]) == (350.0, True)
    assert make_report.run_wall_s(runs["last_epoch"]) == (330.0, True)  # epoch 3 ran in the last process
    from composed_ft.imggen.report import wall_s
    assert wall_s(runs["last_epoch"]) == 330.0 and wall_s(runs["whole"]) == 400.0
    assert make_report.run_wall_s(runs["whole"]) == (400.0, False)
    assert make_report.run_wall_s(runs["new"]) == (350.0, False)


def test_verdict_of_a_claim_row(make_report):
    v = make_report.verdict_of
    assert [v("yes"), v("yes; test pairs: CI excludes 0"), v("no: resolved, the opposite sign"),
            v("not resolved (CI contains 0; same sign)"), v("tie"), v("yes (1 seed, no CI)"), v("n/a")] == \
        ["yes", "yes", "no", "unresolved", "unresolved", "unresolved", "not measured"]
    assert make_report.short_ours("46.1 → 45.6 (-0.5 pts, 95% CI [-1.2, +0.1]; over seeds [-3.4, +2.4]; 500 "
                                  "programs × 3 seeds)") == "46.1 → 45.6 (-0.5 pts, 95% CI [-1.2, +0.1])"
    assert make_report.short_ours("0.2 → 0.1 (-0.1, -50.0% rel.; paired 95% CI [-0.2, -0.0]); test pairs: x") == \
        "0.2 → 0.1 (-0.1, -50.0% rel.; paired 95% CI [-0.2, -0.0])"
    assert make_report.short_ours("missing runs") == "missing runs"


def test_mcnemar_exact_values():
    assert tables.mcnemar_p(0, 0) == 1.0
    assert tables.mcnemar_p(0, 5) == pytest.approx(2 / 32)        # 2 x 0.5^5
    assert tables.mcnemar_p(19, 13) == pytest.approx(0.3771, abs=1e-4)
    assert tables.mcnemar_p(3, 3) == 1.0
    assert tables.mcnemar_p(30, 5) < 0.001


def test_imggen_paper_figure_and_mechanism_from_the_runs_sample_grids(make_report, tmp_path, monkeypatch):
    """Both Direct baselines and Composed at the largest size: the report cuts the panels out of each
    run's samples.png (their layout is in the PNG) into the paper's figure, tables f's norm and spread,
    and compares Composed with the better Direct."""
    import numpy as np

    from composed_ft.imggen.plots import save_grids
    monkeypatch.setattr(make_report, "describe", lambda: "test machine")
    root = tmp_path / "runs" / "imggen" / "cpu"
    fake_run(root / "denoisers" / "blur2", {"stage": "denoise", "seed": 0, "unet_width": 16},
             {"wall_s": 1.0, "n_unlabeled": 10}, [{"updates": u, "train_s": 0.5 * u, "curve_val_mse": 1 / u}
                                                 for u in (250, 500, 750)])
    pos = np.arange(8).reshape(2, 4)
    models = {"direct": ("authors", 0.30, 40.0, 0.80), "direct_strong": ("strong", 0.28, 60.0, 0.85),
              "composed": ("", 0.25, 20.0, 0.30)}
    for name, (variant, mse, norm, spread) in models.items():
        for seed in (0, 1, 2):
            d = root / "main" / f"{name}-n100-s{seed}"
            method = "composed" if name == "composed" else "direct"
            fake_run(d, {"stage": "train", "tag": "main", "method": method, "variant": variant, "n_train": 100,
                         "seed": seed, "bn_eps": 0.8 if variant != "strong" else 1e-5, "dropout": 0.1, "l2": 0.0},
                     {"method": method, "n_test": 8, "wall_s": 1.0, "test_mse_base": mse + 0.3 * (method == "composed")
                      + 0.001 * seed, "test_mse_denoised": mse + 0.001 * seed, "weight_norm": norm + seed,
                      "weight_norm_matrices": norm,
                      "test_spread_base": spread, "test_spread_denoised": 0.8, "test_spread_truth": 0.9},
                     [{"epoch": 1, "val_mse": 0.5, "val_mse_base": 0.5, "val_mse_denoised": 0.4, "weight_norm": norm}])
            imgs = np.full((8, 1, 8, 8), {"direct": -0.5, "direct_strong": 0.0, "composed": 0.5}[name], np.float32)
            save_grids(str(d / "samples.png"),
                       [("truth", imgs, "truth"), ("f", imgs, "base"), ("pi", imgs, "denoised")], pos)
    out = tmp_path / "results" / "REPORT.md"
    assert make_report.main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = out.read_text()
    assert (out.parent / "figures" / "imggen_grid.png").exists() and "](figures/imggen_grid.png)" in text
    assert "](figures/imggen_denoiser_curve.png)" in text  # the denoiser logged curve points
    grid = Image.open(out.parent / "figures" / "imggen_grid.png")
    # five panels (truth, two Directs, Composed base and Π∘f), each a 24-pixel title strip above a
    # 2 x 4 mosaic of 8-pixel glyphs at scale 2; each Direct's own images are in its panel
    assert grid.height == 5 * (24 + 2 * (2 * 9 + 1))
    levels = set(np.asarray(grid).ravel().tolist())
    assert {63, 127, 191} <= levels
    claims = claims_of(text, "## Font image generation")
    row = next(line for line in claims.splitlines() if "vs Direct (strongest) f(x) (the better Direct" in line)
    assert "0.2810 → 0.2510" in row and "| yes" in row
    assert "vs Direct (authors') f(x)" in claims
    row = next(line for line in claims.splitlines() if "‖f‖" in line)
    assert "41.0 → 21.0" in row and "| yes" in row
    assert "| 100 | Composed | BN eps 0.8, dropout 0.1, λ 0 | 21.0 ± 1.0 | 0.300 ± 0.000 | 0.800 ± 0.000 |" in text


def test_the_strict_variant_has_its_own_section_and_figures(make_report, runs, tmp_path, monkeypatch):
    """runs/sanstype-strict/<preset> is reported beside the paper's SansType, under its own title and
    figure names (the same data kind: SansType's splits and claims)."""
    import shutil
    monkeypatch.setattr(make_report, "describe", lambda: "test machine")
    shutil.copytree(runs / "sanstype", runs / "sanstype-strict")
    out = tmp_path / "R" / "REPORT.md"
    make_report.main(["--runs", str(runs), "--out", str(out)])
    text = out.read_text()
    assert "## SansType pseudocode-to-code (the paper's data)" in text
    assert "## SansType, strict variant (beyond the paper)" in text
    for name in ("sanstype_accuracy.png", "sanstype-strict_accuracy.png"):
        assert (out.parent / "figures" / name).exists() and f"](figures/{name})" in text
    assert text.count("### The paper's claims beside our measurements") == 3
