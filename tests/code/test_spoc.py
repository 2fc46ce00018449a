"""SPoC loader: official layout, fallback with a note, programs, test cases, Codeforces extra."""
import os

import pytest
from conftest import require_shared

from composed_ft.code import spoc
from composed_ft.code.cpp_tokenize import split_lines
from composed_ft.core.errors import UserError

HEADER = "text\tcode\tworkerid\tprobid\tsubid\tline\tindent\n"
ROWS = [("", "int main() {", 0), ("read n", "int n; cin >> n;", 1), ("if n is 1", "if (n == 1) {", 1),
        ("print \"a $ b\"", 'cout << "a $ b" << endl;', 2), ("", "}", 1), ("", "return 0;", 1), ("", "}", 0)]


def _write_tsv(path, programs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(HEADER)
        for sub, rows in programs:
            for i, (text, code, ind) in enumerate(rows):
                f.write(f"{text}\t{code}\t01\t1A\t{sub}\t{i}\t{ind}\n")


def _official(tmp_path):
    for name in ("train/split/spoc-train-train.tsv", "train/split/spoc-train-eval.tsv",
                 "train/split/spoc-train-test.tsv", "test/spoc-testp.tsv", "test/spoc-testw.tsv"):
        _write_tsv(tmp_path / name, [("1", ROWS), ("2", ROWS)])
    (tmp_path / "testcases" / "1A").mkdir(parents=True)
    (tmp_path / "testcases" / "1A" / "1A_testcases.txt").write_text(
        "1\r\n###ENDINPUT###\na $ b\n###ENDOUTPUT###\n2\n###ENDINPUT###\n\n###ENDOUTPUT###\n"
        "3\n###ENDINPUT###\n###ENDOUTPUT###\n")
    return tmp_path


def test_official_layout(tmp_path):
    d = spoc.load_spoc(str(_official(tmp_path)))
    assert d["official"] and "official" in d["note"]
    ex = d["splits"]["train"][0]
    assert len(d["splits"]["train"]) == 2
    assert ex["src"] == '~ read n $ ~ if n is 1 $ ~ ~ print "a $ b"'
    assert split_lines(ex["tgt"])[3] == (2, ["cout", "<<", '"a $ b"', "<<", "endl", ";"])
    assert spoc.load_testcases(d["dir"], "1A") == (("1\n", "a $ b\n"), ("2\n", "\n"), ("3\n", ""))


def test_long_training_programs_are_dropped(tmp_path):
    d = spoc.load_spoc(str(_official(tmp_path)), max_train_chars=20)
    assert d["splits"]["train"] == [] and len(d["splits"]["testp"]) == 2


def test_malformed_tsv_is_a_clear_error(tmp_path):
    _official(tmp_path)
    (tmp_path / "test" / "spoc-testw.tsv").write_text(HEADER + "a\tb\tc\n")
    with pytest.raises(UserError, match="spoc-testw.tsv:2"):
        spoc.load_spoc(str(tmp_path))


def test_fallback_to_shared_data(tmp_path):
    require_shared("spoc")
    d = spoc.load_spoc(str(tmp_path / "nothing"))
    assert not d["official"] and "eval (as train)" in d["note"]
    sizes = {k: len(v) for k, v in d["splits"].items()}
    assert sizes["testp"] == 1815 and sizes["testw"] == 1749 and sizes["valid"] == 1025
    assert 1900 < sizes["train"] <= 2010
    assert all(len(ex["tgt"]) <= spoc.MAX_TRAIN_CHARS for ex in d["splits"]["train"])
    tests = spoc.load_testcases(d["dir"], d["splits"]["testp"][0]["probid"])
    assert tests and all("\r" not in i + o for i, o in tests)
    excluded = spoc.test_problem_ids(str(tmp_path / "nothing"))
    extra = spoc.load_codeforces_extra(exclude_probids=excluded)
    assert 0 < len(extra) < 1000 and not {e["probid"] for e in extra} & excluded


def test_restore_braces():
    lines = [("int main() {", 0), ("for (int i = 0; i < n; i++)", 1), ("a[i] = 0;", 2), ("}", 1),
             ("if (x)", 1), ("y = 1;", 2), ("}", 0)]
    out = spoc.restore_braces(lines)
    assert out[1][0].endswith("{") and not out[4][0].endswith("{")
