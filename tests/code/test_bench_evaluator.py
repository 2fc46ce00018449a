"""The evaluator benchmark runs and reports its ratio (tiny sizes; the real numbers come from
`python scripts/bench_evaluator.py`)."""
import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "bench_evaluator.py")


def test_bench_tiny():
    spec = importlib.util.spec_from_file_location("bench_evaluator", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.bench(n=4, baseline_n=1, jobs=2)
    assert r["fast_accuracy"] == 1.0 and r["plain_accuracy"] == 1.0
    assert r["ratio"] > 0 and r["n"] == 4
    assert r["batching_gain"] > 0 and 0 <= r["mixed_compile_error_rate"] <= 1
