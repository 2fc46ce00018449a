"""SansType: deterministic files, gold programs pass, ID/OOD phrasings separated, loader errors."""
import filecmp
import os
import random
import re

import pytest

from composed_ft.code import dataset, sanstype
from composed_ft.code.__main__ import main as cli
from composed_ft.code.cpp_tokenize import detokenize_program
from composed_ft.code.judge import evaluate_programs
from composed_ft.core.errors import UserError

SMALL = ["--n-train", "6", "--n-val", "3", "--n-test", "3", "--n-ood", "4", "--n-unlabeled", "30",
         "--n-unlabeled-val", "5"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    a = tmp_path_factory.mktemp("st_a")
    b = tmp_path_factory.mktemp("st_b")
    for d in (a, b):
        cli(["make-sanstype", "--variant", "strict", "--out", str(d), "--seed", "7", "--jobs", "2"] + SMALL)
    return a, b


def test_same_seed_byte_identical(built):
    a, b = built
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert {"train.src", "train.tgt", "train.inp", "train.out", "ood.out", "unlabeled.tgt"} <= set(names)
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_differs():
    assert sanstype.generate_split(1, "train", 5) != sanstype.generate_split(2, "train", 5)


def test_gold_programs_pass_the_evaluator(built):
    a, _ = built
    for split in sanstype.LABELED:
        exs = dataset.load_split(a, split)
        res = evaluate_programs([detokenize_program(e["tgt"]) for e in exs], [[(e["inp"], e["out"])] for e in exs],
                                jobs=2)
        assert all(r["outcome"] == "correct" for r in res), split
    assert len(dataset.load_split(a, "unlabeled")) == 30


def _pattern(template):
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(r"(\S+)" if p.startswith("{") else re.escape(p) for p in parts) + "$")


ID_PATTERNS = [_pattern(t) for _, ids, _ in sanstype.STATEMENTS.values() for t in ids]
OOD_PATTERNS = [_pattern(t) for _, _, oods in sanstype.STATEMENTS.values() for t in oods]


def test_id_and_ood_phrasings_are_disjoint():
    ids = {t for _, i, _ in sanstype.STATEMENTS.values() for t in i}
    oods = {t for _, _, o in sanstype.STATEMENTS.values() for t in o}
    assert not ids & oods
    rng = random.Random(0)
    for ood in (False, True):
        for _ in range(100):
            for line in sanstype.generate_program(rng, ood=ood)["src"].split(" $ "):
                in_id = any(p.match(line) for p in ID_PATTERNS)
                in_ood = any(p.match(line) for p in OOD_PATTERNS)
                assert (in_ood, in_id) == ((True, False) if ood else (False, True)), line


def test_negation_and_minus_match_the_code():
    rng = random.Random(1)
    progs = [sanstype.generate_program(rng, ood=i % 2 == 1) for i in range(400)]
    assert any("negate" in p["src"] for p in progs) and any(" to not " in p["src"] for p in progs)
    rsub = sub = 0
    for p in progs:
        assert "minus" not in p["src"]
        for m in re.finditer(r"(var_\d) to (\d+) - (var_\d)", p["src"]):
            assert f"{m.group(1)} = {m.group(2)} - {m.group(3)} ;" in p["tgt"]
            rsub += 1
        for m in re.finditer(r"(?:subtract (\d+) from (var_\d)|from (var_\d) subtract (\d+))", p["src"]):
            k, v = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            assert f"{v} -= {k} ;" in p["tgt"]
            sub += 1
    assert rsub > 10 and sub > 10


def test_ood_templates_recombine_id_words():
    """OOD phrasings are new templates made of words the labeled data contains, so OOD accuracy
    measures compositional generalization rather than guessing unseen words."""
    def words(t):
        return set(re.sub(r"\{\w+\}", " ", t).split())
    id_words = set().union(*(words(t) for _, ids, _ in sanstype.STATEMENTS.values() for t in ids))
    for kind, (_, ids, oods) in sanstype.STATEMENTS.items():
        for t in oods:
            assert words(t) <= id_words, (kind, t, words(t) - id_words)
            assert t not in ids


def test_pseudocode_states_no_types_and_types_are_inferable():
    rng = random.Random(2)
    for _ in range(200):
        p = sanstype.generate_program(rng)
        assert not re.search(r"\b(int|bool|string)\b", p["src"])
        assert p["tgt"].count("cout") == len(set(re.findall(r"var_\d", p["tgt"])))


def test_loader_errors_name_the_file(tmp_path):
    dataset.write_split(tmp_path, "x", [{"src": "a", "tgt": "b", "inp": "1\n", "out": "2\n"}] * 3)
    assert dataset.load_split(tmp_path, "x")[0] == {"src": "a", "tgt": "b", "inp": "1\n", "out": "2\n"}
    (tmp_path / "x.out").write_text("2\t\n")
    with pytest.raises(UserError, match="x.out"):
        dataset.load_split(tmp_path, "x")
    os.remove(tmp_path / "x.out")
    with pytest.raises(UserError, match="x.out"):
        dataset.load_split(tmp_path, "x")
    with pytest.raises(UserError, match="y.tgt"):
        dataset.load_split(tmp_path, "y")


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--help"])
    assert e.value.code == 0
    assert "make-sanstype" in capsys.readouterr().out


def test_make_denoise_data_cli(built, tmp_path):
    a, _ = built
    cli(["make-denoise-data", "--dataset", "sanstype", "--data", str(a), "--out", str(tmp_path), "--seed", "1"])
    pairs = dataset.load_split(tmp_path, "unlabeled")
    clean = dataset.load_split(a, "unlabeled")
    assert [p["tgt"] for p in pairs] == [c["tgt"] for c in clean]
    assert sum(p["src"] != p["tgt"] for p in pairs) > 15
