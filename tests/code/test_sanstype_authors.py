"""SansType as the paper had it: the released draw read as it is, and our generator of its
distribution (../shared/SANSTYPE.md) -- deterministic, gold programs correct, statistically
indistinguishable from the release, the denoiser's corruption as specified."""
import filecmp
import os
import random

import pytest
from conftest import require_shared

from composed_ft.code import corruptions as co, dataset, sanstype_authors as sa, sanstype_stats as st
from composed_ft.code.__main__ import main as cli
from composed_ft.code.cpp_tokenize import detokenize_program
from composed_ft.code.judge import evaluate_programs


@pytest.fixture(scope="module")
def released():
    return require_shared("sanstype-1000a")  # the authors' released SansType draw


SMALL = ["--n-train", "8", "--n-val", "4", "--n-test", "4", "--n-ood", "6", "--n-unlabeled", "40",
         "--n-unlabeled-val", "5"]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("sa_a"), tmp_path_factory.mktemp("sa_b")
    for d in (a, b):
        cli(["make-sanstype", "--variant", "authors", "--out", str(d), "--seed", "3", "--n-gen", "12", "--jobs", "2"]
            + SMALL)
    return a, b


def test_same_seed_byte_identical(drawn):
    a, b = drawn
    names = sorted(os.listdir(a))
    assert {"train.src", "train.tgt", "train.inp", "train.out", "ood.src", "unlabeled.tgt", "test_gen.out",
            "ood_gen.src", "dataset.json"} <= set(names)
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []
    assert sa.generate_split(1, "train", 5) != sa.generate_split(2, "train", 5)
    # a larger split does not change a smaller one's programs (one stream per split)
    assert sa.generate_split(0, "train", 30)[:10] == sa.generate_split(0, "train", 10)


def test_generated_gold_programs_pass_and_outputs_are_raw_stdout(drawn):
    a, _ = drawn
    m = dataset.describe(a)
    assert (m["variant"], m["compare"], m["indent_anywhere"]) == ("authors", "rstrip", True)
    for split in ("train", "ood", "test_gen", "ood_gen"):
        exs = dataset.load_split(a, split)
        res = evaluate_programs([detokenize_program(e["tgt"], indent_anywhere=True) for e in exs],
                                [[(e["inp"], e["out"])] for e in exs], jobs=2, compare="exact")
        assert [r["outcome"] for r in res] == ["correct"] * len(exs), split
        assert all("\n" not in e["out"] and e["tgt"].endswith(" $ return 0; }") for e in exs)


def test_released_draw_read_as_it_is(released, tmp_path):
    """Mid-line `~` (a swap block's block-local declarations) is layout, not C++'s bitwise not: every
    released gold program passes through the normal CLI (a sample of each split here; all 2,500 in
    code/README's gold-ceiling run)."""
    m = dataset.describe(released)
    assert (m["dataset"], m["variant"], m["compare"]) == ("sanstype", "authors", "rstrip")
    rc = cli(["gold-ceiling", "--dataset", "sanstype", "--data", released, "--limit", "40", "--jobs", "2",
              "--out", str(tmp_path)])
    assert rc == 0
    # the programs with a mid-line `~` are exactly those that failed before
    tgts = [e["tgt"] for e in dataset.load_split(released, "train")]
    tilde = [t for t in tgts if " ~ " in t]
    assert len(tilde) > 100
    res = evaluate_programs([detokenize_program(t, indent_anywhere=True) for t in tilde[:16]],
                            [[("", "")]] * 16, jobs=2, compare="rstrip")
    assert all(r["outcome"] != "compile_error" for r in res)
    res = evaluate_programs([detokenize_program(t) for t in tilde[:16]], [[("", "")]] * 16, jobs=2)
    assert all(r["outcome"] == "compile_error" for r in res)   # read as bitwise not, as before


def test_every_released_line_parses_and_serialization_round_trips(released):
    for split in ("train", "val", "test", "ood"):
        for e in dataset.load_split(released, split):
            body = sa.body_lines(e["tgt"])
            assert body is not None
            assert all(co.parse_line(b)[0] is not None for b in body), e["tgt"]
            assert sa.serialize_tgt(body) == e["tgt"]
            assert e["src"].startswith(" $ ") and e["src"].endswith(";  $ ")
            assert len(st.pseudo_pieces(e["src"])) == len(body)   # one pseudocode line per code line


def test_generator_is_the_released_distribution(released):
    """The faithfulness tests on a small draw: no two-sample test below p = 0.01 (the full table,
    with 10,000 + 5,000 programs, is scripts/sanstype_faithfulness.py) -- and the same tests do
    reject a generator that differs (OOD phrasings offered as ID)."""
    rel_id = [e for s in ("train", "val", "test") for e in dataset.load_split(released, s)]
    rel_ood = dataset.load_split(released, "ood")
    ours_id = st.describe_programs(sa.generate_split(0, "faithfulness_id", 3000, ood=False))
    for rows in (st.compare(st.describe_programs(rel_id), ours_id),
                 st.compare(st.describe_programs(rel_ood),
                            st.describe_programs(sa.generate_split(0, "f_ood", 1500, ood=True)))):
        assert len(rows) == 7
        assert all(r["p"] >= 0.01 for r in rows), [(r["stat"], r["p"]) for r in rows]
    wrong = st.compare(st.describe_programs(rel_id), st.describe_programs(sa.generate_split(0, "x", 3000, ood=True)))
    assert wrong[0]["stat"] == "pseudocode templates" and wrong[0]["p"] < 1e-6


def test_noised_variants_follow_the_table():
    rng = random.Random(0)
    seen = {}
    for line in ["int var_1 = 5 ;", "bool var_2 ; var_2 = true ;", "string var_3 ;", "cin >> var_3 ;",
                 "var_1 += 7 ;", "var_1 = var_1 - 7 ;", "var_2 = var_2 && false ;", 'var_3 = "str_1" + var_3 ;',
                 'var_3 += "str_2" ;', "var_1 = 9 ;", "var_1 = max ( var_1 , var_4 ) ;", "cout << var_1 ;",
                 "if ( var_2 ) { int temp = var_1 ; var_1 = var_4 ; var_4 = temp ; }",
                 'if ( var_2 ) { ~ string var_5 = "str_1" ; ~ string var_6 ; var_6 = "str_2" ; string temp = var_5 ; '
                 'var_5 = var_6 ; var_6 = temp ; }']:
        seen[line] = {co.noised_variant(line, rng) for _ in range(300)}
    assert seen["int var_1 = 5 ;"] == {"bool var_1 = 5 ;", "string var_1 = 5 ;", "var_1 = 5 ;",
                                       "bool var_1 ; var_1 = 5 ;", "string var_1 ; var_1 = 5 ;"}
    assert seen["string var_3 ;"] == {"int var_3 ;", "bool var_3 ;"}
    assert seen["cin >> var_3 ;"] == {"cin var_3 ;", "cin >> var_3 ;", "cin << var_3 ;"}
    assert seen["var_1 += 7 ;"] == {f"{t} var_1 {f}" for t in ("int", "bool", "string")
                                    for f in ("+= 7 ;", "= var_1 + 7 ;")}
    assert seen["var_1 = 9 ;"] == {"var_1 = 9 ;", "int var_1 = 9 ;", "bool var_1 = 9 ;", "string var_1 = 9 ;"}
    assert seen["cout << var_1 ;"] == {""}
    assert seen['var_3 += "str_2" ;'] >= {'string var_3 += "str_2" ;', 'int var_3 = var_3 + "str_2" ;'}
    assert all(v.startswith("if ( var_2 ) { ") and "temp = var_1 ; var_1 = var_4 ; var_4 = temp ; }" in v
               and "int temp" not in v
               for v in seen["if ( var_2 ) { int temp = var_1 ; var_1 = var_4 ; var_4 = temp ; }"])
    assert all(v.count("~ ") == 2 for v in seen[list(seen)[-1]])


def test_corruption_statistics_match_sanstype_md():
    progs = [e["tgt"] for e in sa.generate_split(0, "unlabeled", 4000, ood=False)]
    stats = st.corruption_stats(progs, co.corrupt_authors, random.Random(1))
    rows = st.compare_corruption(stats)
    assert rows[0]["p"] >= 0.01 and rows[1]["ok"]
    corrupted = [co.corrupt_authors(t, random.Random(i)) for i, t in enumerate(progs[:200])]
    assert all(c.startswith("int main () { $ ") and c.endswith(" $ return 0; }") for c in corrupted)
    assert any(" $  $ " in c for c in corrupted)   # a deleted print leaves an empty line
    deleted = [co.delete_tokens_authors(t, random.Random(i)) for i, t in enumerate(progs[:200])]
    assert sum(d == t for d, t in zip(deleted, progs)) > 5 and all(d.endswith(" $ return 0; }") for d in deleted)


def test_outputs_equal_to_a_checked_gold_program_are_not_judged_again(drawn):
    """On a split whose gold programs were all judged when the data set was made (manifest
    `gold_checked`), an output equal to its gold program is that program: correct without compiling it
    again; every other output is judged, once even when both rows (base, + Π) produced it."""
    from composed_ft.code.evaluation import judge_outputs
    a, _ = drawn
    m = dataset.describe(a)
    assert "test_gen" in m["gold_checked"]
    exs = dataset.load_split(a, "test_gen")[:6]
    tests = [[(e["inp"], e["out"])] for e in exs]
    broken = exs[1]["tgt"].replace(" ;", "", 1)            # no longer compiles
    other = exs[0]["tgt"]                                   # another program's gold: wrong output here
    texts = [exs[0]["tgt"], broken, other, exs[3]["tgt"], exs[4]["tgt"], exs[5]["tgt"]]
    data = type("D", (), {"manifest": m, "std": None, "compare": m["compare"]})()
    progs = [detokenize_program(t, indent_anywhere=True) for t in texts]
    out = judge_outputs(data, "test_gen", exs, tests, {"base": (texts, progs), "denoised": (texts, progs)}, jobs=2)
    assert [r["outcome"] for r in out["base"]] == ["correct", "compile_error", "wrong_output" if exs[0]["out"]
                                                   != exs[2]["out"] else "correct", "correct", "correct", "correct"]
    assert [r.get("judged", True) for r in out["base"]] == [False, True, True, False, False, False]
    outcomes = {kind: [r["outcome"] for r in out[kind]] for kind in out}
    assert out["denoised"] == out["base"] or outcomes["denoised"] == outcomes["base"]
    # the same outputs judged in full agree with the shortcut
    full = evaluate_programs(progs, tests, jobs=2, compare=m["compare"])
    assert [r["outcome"] for r in full] == [r["outcome"] for r in out["base"]]
