"""The evaluator benchmark runs and reports its ratio (tiny sizes; the real numbers come from
`python scripts/bench_evaluator.py`)."""
import random

import pytest
from conftest import load_script

from composed_ft.code.corruptions import corrupt_sanstype
from composed_ft.code.cpp_tokenize import detokenize_program
from composed_ft.code.judge import compile_check
from composed_ft.code.sanstype import generate_split


def test_bench_tiny():
    mod = load_script("bench_evaluator")
    r = mod.bench(n=4, baseline_n=1, jobs=2)
    assert r["fast_accuracy"] == 1.0 and r["plain_accuracy"] == 1.0 and r["n"] == 4
    # the ratios are the rates they are said to compare
    assert r["ratio"] == pytest.approx(r["fast_programs_per_s"] / r["plain_programs_per_s"])
    assert r["batching_gain"] == pytest.approx(r["fast_programs_per_s"] / r["fast_nobatch_programs_per_s"])
    # the corrupted programs' compile-error rate is what g++ says of the same corrupted programs
    exs = generate_split(0, "bench", 4)
    rng = random.Random(0)
    corrupted = [detokenize_program(corrupt_sanstype(e["tgt"], rng)) for e in exs]
    assert r["mixed_compile_error_rate"] == sum(not ok for ok in compile_check(corrupted, jobs=2)) / 4
