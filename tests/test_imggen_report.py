"""composed_ft/imggen/report.py's per-test-pair comparisons: records read from a run directory (plain or
as archived, gzip-compressed), paired by (font, character), averaged over seeds, and the ablation tables'
Δ column built from them."""
import gzip
import json
import math

from composed_ft.core import tables
from composed_ft.imggen import report


def run(tmp_path, name, method, seed, mse, n_train=100, tag="main", gz=False, **config):
    """A finished predictor run whose per-pair records hold `mse` (a list: MSE of its own output per pair,
    pair i = (font i % 7, char i)); results hold their means."""
    d = tmp_path / name
    d.mkdir(parents=True)
    own = "mse_denoised" if method == "composed" else "mse_base"
    recs = [{"font": i % 7, "char": i, "mse_base": v + 0.5 * (method == "composed"), "mse_denoised": v}
            if own == "mse_denoised" else {"font": i % 7, "char": i, "mse_base": v, "mse_denoised": v + 0.1}
            for i, v in enumerate(mse)]
    text = "".join(json.dumps(r) + "\n" for r in reversed(recs))  # the order must not matter
    if gz:
        with gzip.open(d / (report.PAIR_RECORDS + ".gz"), "wt") as f:
            f.write(text)
    else:
        (d / report.PAIR_RECORDS).write_text(text)
    cfg = {"stage": "train", "tag": tag, "method": method, "seed": seed, "n_train": n_train, "bn_eps": 0.8,
           "dropout": 0.0, "l2": 0.0, **config}
    res = {"method": method, "n_test": len(mse), "best_epoch": 1, "epochs": 2,
           "test_mse_base": sum(r["mse_base"] for r in recs) / len(recs),
           "test_mse_denoised": sum(r["mse_denoised"] for r in recs) / len(recs)}
    return {"path": str(d), "config": cfg, "results": res}


def test_paired_pairs_averages_seeds_per_pair_and_gives_a_normal_ci(tmp_path):
    ref = [0.30, 0.20, 0.40, 0.10, 0.25]
    new = {0: [0.28, 0.21, 0.35, 0.09, 0.20], 1: [0.27, 0.19, 0.37, 0.10, 0.22]}
    comp = [run(tmp_path, f"c{s}", "composed", s, new[s], gz=s == 1) for s in (0, 1)]
    direct = [run(tmp_path, f"d{s}", "direct", s, ref) for s in (0, 1)]
    p = report.paired_pairs([(r, "denoised") for r in comp], [(r, "base") for r in direct])
    d = [(new[0][i] + new[1][i]) / 2 - ref[i] for i in range(5)]
    m = sum(d) / 5
    se = math.sqrt(sum((x - m) ** 2 for x in d) / 4 / 5)
    assert p["n"] == 5 and p["seeds"] == [0, 1]
    assert math.isclose(p["diff"], m, abs_tol=1e-12) and math.isclose(p["se"], se, rel_tol=1e-9)
    assert math.isclose(p["ci"][1], m + tables.Z95 * se, rel_tol=1e-9) and report.pair_resolved(p)
    assert report.pair_cell(p) == f"{m:+.4f} [{m - tables.Z95 * se:+.4f}, {m + tables.Z95 * se:+.4f}]"
    # a seed only one side has is left out; no common seed or no records: None
    assert report.paired_pairs([(comp[0], "denoised")], [(direct[1], "base")]) is None
    bare = dict(direct[0], path=str(tmp_path / "none"))
    assert report.paired_pairs([(comp[0], "denoised")], [(bare, "base")]) is None
    assert report.pair_cell(None) == "—"


def test_ablation_rows_carry_their_per_pair_difference_from_the_main_run(tmp_path):
    main = [run(tmp_path, "main/c", "composed", 0, [0.2, 0.3, 0.4, 0.5], l2=1e-4),
            run(tmp_path, "main/d", "direct", 0, [0.2, 0.3, 0.4, 0.5])]
    abl = [run(tmp_path, "abl/c", "composed", 0, [0.3, 0.4, 0.5, 0.6], tag="ablation-l2", l2=1e-2),
           run(tmp_path, "abl/d", "direct", 0, [0.19, 0.31, 0.38, 0.52], tag="ablation-l2", l2=1e-2)]
    header, rows = report.ablation_table(abl, report.reference_runs("ablation-l2", abl, main), "ablation-l2")
    col = next(i for i, h in enumerate(header) if h.startswith("Δ vs main run"))
    by = {(r[0], r[1]): r[col] for r in rows}
    assert by[("0.0001", "composed (main run)")] == "—"
    assert by[("0.01", "composed")].startswith("+0.1000 [") and by[("0.01", "composed")].endswith(" *")
    assert not by[("0.01", "direct")].endswith(" *")  # noise around 0
    # the labeled-examples ablation: Composed against the authors' Direct at the same size
    lab = [run(tmp_path, "lab/c", "composed", 0, [0.1, 0.2, 0.3, 0.4], n_train=50, tag="ablation-labeled", l2=1e-4),
           run(tmp_path, "lab/d", "direct", 0, [0.2, 0.3, 0.4, 0.5], n_train=50, tag="ablation-labeled")]
    header, rows = report.ablation_table(lab, report.reference_runs("ablation-labeled", lab, main), "ablation-labeled")
    col = next(i for i, h in enumerate(header) if h.startswith("Composed Π(f(x)) − Direct"))
    by = {(r[0], r[header.index("method")]): r[col] for r in rows}
    assert by[("50", "composed")].startswith("-0.1000 [") and by[("50", "direct")] == "—"
    assert by[("100", "composed (main run)")].startswith("+0.0000")


def test_an_extended_main_run_is_the_reference_at_the_ablations_budget(tmp_path):
    """A main run continued by --extend (12 updates) keeps its 6-update results and per-pair records; an
    ablation trained for 6 updates is compared with that snapshot, not with the longer run."""
    main = run(tmp_path, "main/c", "composed", 0, [0.1, 0.1, 0.1, 0.1], l2=1e-4, max_update=12)
    main["results"]["updates"] = 12
    d = tmp_path / "main/c"
    (d / "eval_test_6.jsonl").write_text("".join(json.dumps({"font": i % 7, "char": i, "mse_base": 0.9,
                                                            "mse_denoised": v}) + "\n"
                                                for i, v in enumerate([0.2, 0.3, 0.4, 0.5])))
    (d / "results_6.json").write_text(json.dumps(dict(main["results"], updates=6, test_mse_denoised=0.35)))
    abl = [run(tmp_path, "abl/c", "composed", 0, [0.3, 0.4, 0.5, 0.6], tag="ablation-l2", l2=1e-2, max_update=6)]
    abl[0]["results"]["updates"] = 6
    refs = report.reference_runs("ablation-l2", abl, [main])
    assert [r.get("snapshot") for r in refs] == [6] and refs[0]["config"]["max_update"] == 6
    header, rows = report.ablation_table(abl, refs, "ablation-l2")
    col = next(i for i, h in enumerate(header) if h.startswith("Δ vs main run"))
    by = {(r[0], r[1]): r for r in rows}
    assert by[("0.0001", "composed (main run at 6 updates)")][header.index("test MSE Π(f(x))")] == [0.35]
    assert by[("0.01", "composed")][col].startswith("+0.1000 [")  # against the snapshot's records, not 0.1
    # an ablation at the main run's current budget is compared with the run itself
    abl[0]["config"]["max_update"], abl[0]["results"]["updates"] = 12, 12
    assert report.reference_runs("ablation-l2", abl, [main]) == [main]
    header, rows = report.ablation_table(abl, [main], "ablation-l2")
    assert ("0.0001", "composed (main run)") in {(r[0], r[1]) for r in rows}
    # a main run without a snapshot at the ablation's budget is still the reference, marked as such
    abl[0]["config"]["max_update"], abl[0]["results"]["updates"] = 6, 6
    (d / "results_6.json").unlink()
    refs = report.reference_runs("ablation-l2", abl, [main])
    assert refs == [main]
    header, rows = report.ablation_table(abl, refs, "ablation-l2")
    assert ("0.0001", "composed (main run at 12 updates; this ablation's runs: 6)") in {(r[0], r[1]) for r in rows}


def test_a_row_whose_seeds_mix_settings_is_flagged(tmp_path):
    """The seeds averaged into one row must be one experiment: when they differ in a setting other than
    the seed (and what a resumption may change: device, run_dir, ...), the row says which; a setting an
    older run lacks counts as the value it was made with (config.from_saved)."""
    same = [run(tmp_path, f"c{s}", "composed", s, [0.2, 0.3], l2=1e-4, device=f"cuda:{s}", run_dir=f"c{s}")
            for s in (0, 1)]
    assert tables.mixed_settings(same, upgrade=report.comparable) == {}
    mixed = same + [run(tmp_path, "c2", "composed", 2, [0.2, 0.3], l2=1e-4, lr=1e-3, max_update=6000)]
    for r in same:
        r["config"].update(lr=2e-4, max_update=32000)
    _, rows = report.main_table(mixed)
    assert rows[0][1] == "Composed ⚠ seeds mix settings: lr 0.0002 / 0.001; max_update 32000 / 6000"
    _, rows = report.main_table(same)
    assert rows[0][1] == "Composed"
    # an older run without l2_scope was made with the matrices-only penalty: a mix with the authors'
    old = run(tmp_path, "c3", "composed", 3, [0.2, 0.3], l2=1e-4, l2_scope="nonbias", lr=2e-4, max_update=32000)
    older = dict(old, config={k: v for k, v in old["config"].items() if k != "l2_scope"})
    assert tables.mixed_settings([old, older], upgrade=report.comparable) == {"l2_scope": ["nonbias", "weights"]}
    assert tables.mixed_settings([old, older]) == {}  # without reading it as made, the key is not compared
    # the ablation tables flag their rows the same way
    abl = [run(tmp_path, f"a{s}", "composed", s, [0.3, 0.4], tag="ablation-l2", l2=1e-2, lr=1e-4 * (s + 1))
           for s in (0, 1)]
    h, rows = report.ablation_table(abl, (), "ablation-l2")
    assert rows[0][h.index("method")] == "composed ⚠ seeds mix settings: lr 0.0001 / 0.0002"


def test_the_code_tables_flag_a_row_whose_seeds_mix_settings():
    from composed_ft.code.report import predictor_rows
    res = {"eval": {"test": {"base": {"accuracy": 0.5, "compile_error_rate": 0, "runtime_error_rate": 0,
                                      "wrong_output_rate": 0.5, "hit_limit": 0}}}}
    runs = [{"config": {"stage": "direct", "seed": s, "lr": lr, "denoiser": f"den-s{s}", "run_dir": f"r{s}"},
             "results": res, "path": f"r{s}"} for s, lr in ((0, 1e-3), (1, 1e-3), (2, 2e-3))]
    _, rows, _, _ = predictor_rows(runs[:2], splits=[("test", "test")])
    assert rows[0][0] == "Direct base"  # per-seed Π paths are not settings
    _, rows, _, _ = predictor_rows(runs, splits=[("test", "test")])
    assert rows[0][0] == "Direct base ⚠ seeds mix settings: lr 0.001 / 0.002"
