"""scripts/bench.py writes the sections it ran into results/BENCH.md and keeps the others as they were."""
from conftest import load_script


def test_merge_replaces_its_sections_keeps_the_others_and_appends_new_ones():
    bench = load_script("bench")
    old = "# Benchmarks\n\nold head\n\n## A\n\na1\n\n### sub of A\n\nx\n\n## B\n\nb1\n"
    out = bench.merge(old, ["## B\n\nb2\n", "## C\n\nc\n"], "# Benchmarks\n\nnew head\n")
    assert out == "# Benchmarks\n\nnew head\n\n## A\n\na1\n\n### sub of A\n\nx\n\n## B\n\nb2\n\n## C\n\nc\n"
    assert bench.merge("", ["## A\n\na\n"], "# H\n") == "# H\n\n## A\n\na\n"
