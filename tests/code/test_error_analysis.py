"""The error breakdown: where a failed output first departs from the gold program."""
import json

import pytest

from composed_ft.code import error_analysis as ea
from composed_ft.code.__main__ import main as cli
from composed_ft.core.errors import UserError

GOLD = ('int main ( ) { $ ~ string var_1 ; $ ~ cin >> var_1 ; $ ~ int var_2 = 7 ; $ ~ var_1 += "ab" ; $ '
        '~ cout << var_1 << endl ; $ ~ cout << var_2 << endl ; $ }')


@pytest.mark.parametrize("pred,cat", [
    (GOLD, None),
    (GOLD.replace("~ string var_1 ;", "~ int var_1 ;"), "type"),
    (GOLD.replace('"ab"', '"ba"'), "string literal"),
    (GOLD.replace("= 7", "= 8"), "number or bool"),
    (GOLD.replace("cin >> var_1", "cin >> var_2"), "variable"),
    (GOLD.replace("var_1 += ", "var_1 -= "), "structure"),
    (GOLD.replace(" $ ~ cout << var_2 << endl ;", ""), "line missing"),
    (GOLD.replace(" $ }", " $ ~ cout << var_2 << endl ; $ }"), "line added"),
    ("int main ( ) {", "line missing"),
])
def test_first_difference(pred, cat):
    assert ea.first_difference(pred, GOLD) == cat


def test_cli_counts_failures_by_outcome(tmp_path, capsys):
    def rec(pred, outcome, hit=False):
        return {"gold": GOLD, "base": {"pred": pred, "outcome": outcome, "hit_limit": hit},
                "denoised": {"pred": GOLD, "outcome": "correct", "hit_limit": False}}
    recs = [rec(GOLD, "correct"), rec(GOLD.replace("~ string var_1 ;", "~ int var_1 ;"), "compile_error"),
            rec(GOLD.replace("~ string var_1 ;", "~ bool var_1 ;"), "compile_error"),
            rec(GOLD.replace('"ab"', '"ba"'), "wrong_output"), rec(GOLD + " x", "compile_error", hit=True)]
    (tmp_path / "eval_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    table = ea.classify(recs)
    assert table["compile_error"] == {"type": 2, "length limit": 1}
    assert table["wrong_output"] == {"string literal": 1}
    assert cli(["errors", "--run-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 failed programs" in out
    assert "| declaration without initializer | f declares | 2 |" in out
    assert "| compile_error | 3 | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 1 |" in out
    # the gated row takes Π's (correct) output where f's failed to compile: one failure left
    assert cli(["errors", "--run-dir", str(tmp_path), "--kind", "gated"]) == 0
    assert "1 failed programs" in capsys.readouterr().out


def test_missing_records_name_the_file(tmp_path):
    with pytest.raises(UserError, match="eval_ood.jsonl"):
        ea.read_records(str(tmp_path), "ood")


def test_type_detail():
    assert ea.type_detail(GOLD.replace("~ string var_1 ;", "~ int var_1 ;"), GOLD) == \
        ("declaration without initializer", "f declares")
    assert ea.type_detail(GOLD.replace("~ int var_2 = 7 ;", "~ var_2 = 7 ;"), GOLD) == \
        ("declaration with initializer", "f does not declare")
    assert ea.type_detail(GOLD.replace('~ var_1 += "ab" ;', '~ string var_1 += "ab" ;'), GOLD) == \
        ("not a declaration", "f declares")


def test_compare_counts_gains_losses_on_common_programs(tmp_path, capsys):
    """compare pairs programs by index (only those both runs judged) and reports the exact McNemar p."""
    def write(d, outcomes):
        d.mkdir()
        with open(d / "eval_test.jsonl", "w") as f:
            for i, o in outcomes.items():
                f.write(json.dumps({"index": i, "src": "", "gold": GOLD, "base": {"pred": GOLD, "outcome": o}}) + "\n")
    # ref right on 0-5; new right on 0-1 and 6-9 (+ index 10, which the reference never judged)
    write(tmp_path / "ref", {i: "correct" if i < 6 else "compile_error" for i in range(10)})
    write(tmp_path / "new", {i: "correct" if i < 2 or i >= 6 else "wrong_output" for i in range(11)})
    n, r, k, b, c = ea.paired(ea.read_records(tmp_path / "ref", "test"),
                                  ea.read_records(tmp_path / "new", "test"))
    assert (n, r, k, b, c) == (10, 6, 6, 4, 4)
    assert cli(["compare", "--ref", str(tmp_path / "ref"), "--run-dir", str(tmp_path / "new")]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.endswith("| test | 10 | 60.0 | 60.0 | 4 | 4 | 1 |")
    write(tmp_path / "far", {20: "correct"})
    with pytest.raises(SystemExit) as e:
        cli(["compare", "--ref", str(tmp_path / "ref"), "--run-dir", str(tmp_path / "far")])
    assert e.value.code == 2 and "no test programs in common" in capsys.readouterr().err
