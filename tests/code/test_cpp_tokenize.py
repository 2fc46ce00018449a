"""Tokenizer: tricky tokens, round trips, and detokenized gold code compiles."""
import random

import pytest
from conftest import require_shared

from composed_ft.code.cpp_tokenize import detokenize_program, split_lines, tokenize_line, tokenize_program
from composed_ft.code.judge import compile_check, evaluate_programs
from composed_ft.code.sanstype import generate_program


@pytest.mark.parametrize("code,tokens", [
    ("std::max(a, b);", ["std", "::", "max", "(", "a", ",", "b", ")", ";"]),
    ("x <<= 2; y >>= 3;", ["x", "<<=", "2", ";", "y", ">>=", "3", ";"]),
    ("long long v = 1LL << 40;", ["long", "long", "v", "=", "1LL", "<<", "40", ";"]),
    ("int h = 0x1F + 1e-9 + .5f;", ["int", "h", "=", "0x1F", "+", "1e-9", "+", ".5f", ";"]),
    ('cout << "a $ b ~ c" << \'$\';', ["cout", "<<", '"a $ b ~ c"', "<<", "'$'", ";"]),
    ('s = "say \\"hi\\"";', ["s", "=", '"say \\"hi\\""', ";"]),
    ("a->b++;", ["a", "->", "b", "++", ";"]),
    ("#include <bits/stdc++.h>", ["#include", "<bits/stdc++.h>"]),
])
def test_tokens(code, tokens):
    assert tokenize_line(code) == tokens


def test_literals_survive_the_one_line_format():
    code = 'int main() {\n  string s = "x $ y  ~ z";\n  char c = \'$\';\n  cout << s << c << endl;\n}\n'
    one = tokenize_program(code)
    lines = split_lines(one)
    assert len(lines) == 5 and lines[1] == (1, ["string", "s", "=", '"x $ y  ~ z"', ";"])
    assert tokenize_program(detokenize_program(one)) == one
    res = evaluate_programs([detokenize_program(one)], [[("", "x $ y  ~ z$\n")]], jobs=1)
    assert res[0]["outcome"] == "correct"


def test_leading_bitwise_not_is_not_indentation():
    one = tokenize_program("int main() {\n  int x = 5;\n  ~x;\n  cout << (~x) << endl;\n}")
    assert "compl x ;" in one
    res = evaluate_programs([detokenize_program(one)], [[("", "-6\n")]], jobs=1)
    assert res[0]["outcome"] == "correct"


def test_sanstype_round_trip_and_compiles():
    rng = random.Random(5)
    tgts = [generate_program(rng)["tgt"] for _ in range(6)]
    for t in tgts:
        assert tokenize_program(detokenize_program(t)) == t
    assert all(compile_check([detokenize_program(t) for t in tgts], jobs=2))


def test_spoc_gold_round_trip_compiles():
    from composed_ft.code import spoc

    exs = spoc.load_spoc(require_shared("spoc"), splits=("testw",))["splits"]["testw"]
    sample = random.Random(0).sample(exs, 8)
    for ex in sample:
        assert tokenize_program(detokenize_program(ex["tgt"])) == ex["tgt"]
    raw = compile_check([ex["code"] for ex in sample], jobs=2, std="gnu++11")
    detok = compile_check([detokenize_program(ex["tgt"]) for ex in sample], jobs=2, std="gnu++11")
    assert sum(raw) >= 6 and detok == raw
