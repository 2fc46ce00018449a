"""The code experiments' report section: claims tested per program (per-program CI, exact McNemar,
the smallest resolvable difference), from the runs' eval_<split>.jsonl or their archived .gz."""
import gzip
import json
import os

from composed_ft.code import report_section as rs
from composed_ft.core import tables

# a fake Composed run's objective: the authors' (the paper's row)
AUTHORS = {"compose": {"logp_sum": "padded", "logp_mode": "eval"}}

def _run(path, stage, seed, acc, n):
    """A run dict as tables.collect gives it, with records: programs 0..k-1 correct for accuracy k/n of
    each (split, kind) in acc."""
    os.makedirs(path, exist_ok=True)
    splits = sorted({sp for sp, _ in acc})
    ev = {sp: {"n": n, **{k: {"accuracy": a} for (s, k), a in acc.items() if s == sp}} for sp in splits}
    for sp in splits:
        recs = [{"index": i, "gold": "g", **{k: {"outcome": "correct" if i < round(a * n) else "wrong_output",
                                                 "pred": "p", "hit_limit": False}
                                             for (s, k), a in acc.items() if s == sp}} for i in range(n)]
        with open(os.path.join(path, f"eval_{sp}.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)
    return {"path": str(path), "config": {"stage": stage, "seed": seed, "tag": "main", **AUTHORS.get(stage, {})},
            "results": {"eval": ev, "init_stage": "pretrain" if stage == "compose" else None}}


def _claims(runs):
    preds = rs.table_runs(runs)
    pairs = rs.splits_of("sanstype", preds)
    splits = [s for pair in pairs for s in pair]
    return rs.code_claims("sanstype", rs.code_values(preds, splits), pairs, rs.code_examples(preds, splits))


def test_one_seed_claims_are_tested_per_program_from_the_records_or_their_gz(tmp_path):
    def rec(pre_ok, comp_ok):
        return ({"gold": "g", "base": {"outcome": "correct" if pre_ok else "compile_error", "pred": "p"},
                 "denoised": {"outcome": "correct" if pre_ok else "compile_error", "pred": "p"}},
                {"gold": "g", "base": {"outcome": "wrong_output", "pred": "p"},
                 "denoised": {"outcome": "correct" if comp_ok else "wrong_output", "pred": "p"}})
    pairs = [rec(False, True)] * 12 + [rec(True, False)] * 2 + [rec(True, True)] * 6 + [rec(False, False)] * 80
    runs = []
    for stage, k in (("pretrain", 0), ("compose", 1)):
        recs = [dict(p[k], index=i) for i, p in enumerate(pairs)]
        acc = {kind: {"accuracy": sum(r[kind]["outcome"] == "correct" for r in recs) / 100}
               for kind in ("base", "denoised")}
        d = tmp_path / stage
        d.mkdir()
        text = "".join(json.dumps(r) + "\n" for r in recs)
        (d / "eval_test.jsonl").write_text(text)
        (d / "eval_ood.jsonl.gz").write_bytes(gzip.compress(text.encode()))
        runs.append({"path": str(d), "config": {"stage": stage, "seed": 0, "tag": "main", **AUTHORS.get(stage, {})},
                     "results": {"eval": {sp: {"n": 100, **acc} for sp in ("test", "ood")},
                                 "init_stage": "pretrain" if stage == "compose" else None}})
    claims = _claims(runs)
    for split in ("ID test", "OOD test"):  # the OOD records come from the .gz
        row = next(c for c in claims if c[0].startswith(f"{split}: Composed"))
        assert row[2].startswith("8.0 → 18.0 (+10.0 pts, 95% CI [") and "100 programs × 1 seed)" in row[2]
        assert row[3] == f"{tables.mcnemar_p(2, 12):.2g} (12 / 2)"
        assert row[6] == "yes"  # +12 / -2 of 100: the per-program CI excludes 0
    # without records there is no per-program test: the row says so instead of guessing
    for r in runs:
        for f in os.listdir(r["path"]):
            os.remove(os.path.join(r["path"], f))
    row = next(c for c in _claims(runs) if c[0].startswith("ID test: Composed"))
    assert row[2] == "missing runs" and row[6] == "n/a"


def _ood_vs_id(tmp_path, acc):
    """The OOD-vs-ID row of main runs with accuracies acc: {(stage, seed): (test, ood)} (500 programs)."""
    runs = [_run(tmp_path / f"{stage}-s{seed}", stage, seed,
                 {(sp, kind): a for sp, a in (("test", t), ("ood", o)) for kind in ("base", "denoised")}, 500)
            for (stage, seed), (t, o) in acc.items()]
    return next(c for c in _claims(runs) if c[0].startswith("Gain of Composed over Pretrained"))


def test_ood_vs_id_gain_is_not_defined_from_a_zero_reference(tmp_path):
    acc = {(stage, seed): (t, 0.0) for stage, t in (("pretrain", 0.10), ("compose", 0.12)) for seed in (0, 1)}
    row = _ood_vs_id(tmp_path, acc)
    assert row[2].startswith("not defined") and row[6] == "n/a"


def test_ood_vs_id_gain_from_a_few_programs_is_within_noise(tmp_path):
    """0.1% -> 0.4% OOD is a '+300%' relative gain from a couple of programs: the row's CI says so."""
    acc = {("pretrain", 0): (0.16, 0.002), ("pretrain", 1): (0.15, 0.0),   # (test, ood)
           ("compose", 0): (0.14, 0.004), ("compose", 1): (0.15, 0.004)}
    row = _ood_vs_id(tmp_path, acc)
    assert "relative gain OOD +300.0%" in row[2] and row[6] == "not resolved (CI contains 0; same sign)", row


def test_heldout_draw_row_compares_two_independent_samples():
    """Issue 36's check: the composed model on a fresh draw of the generator scores as on the released split
    when the difference's 95% interval (two binomial standard errors) contains 0, and not when it does not."""
    pairs = [(("test", "ID test"), ("ood", "OOD test")), (("test_gen", "ID generated"), ("ood_gen", "OOD generated"))]
    name = rs.COMPOSED
    ex = {name: {"test": {0: [True] * 50 + [False] * 50}, "test_gen": {0: [True] * 210 + [False] * 190},
                 "ood": {0: [True] * 20 + [False] * 80}, "ood_gen": {0: [True] * 200 + [False] * 200}}}
    (id_row, ood_row) = rs.heldout_draw_rows(pairs, ex)
    assert id_row[0] == f"Held-out draw: {name} on ID generated vs ID test"
    assert "50.0 (100 programs) → 52.5 (400)" in id_row[2] and id_row[-1] == "yes: within the noise"
    se = ((0.2 * 0.8 / 100) + (0.5 * 0.5 / 400)) ** 0.5  # 0.2 -> 0.5: 30 points, ~6.2 standard errors
    assert 0.3 / se > 4 and ood_row[-1] == "no: the draws differ"
    assert rs.heldout_draw_rows(pairs[:1], ex) == []
