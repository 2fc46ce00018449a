"""composed_ft/core/records.py: a run's JSON-lines records read alike in every form the archive keeps."""
import gzip
import lzma
import os

from composed_ft.core import records
from composed_ft.core.runs import read_jsonl


def test_every_stored_form_reads_the_same_lines(tmp_path):
    rows = ['{"epoch": 1}', '{"epoch": 2}']
    text = "".join(r + "\n" for r in rows).encode()
    for name, write in (("plain", lambda p: p.write_bytes(text)),
                        ("xz", lambda p: p.with_name(p.name + ".xz").write_bytes(lzma.compress(text))),
                        ("gz", lambda p: p.with_name(p.name + ".gz").write_bytes(gzip.compress(text)))):
        path = tmp_path / name / "metrics.jsonl"
        path.parent.mkdir()
        write(path)
        assert records.lines(path) == rows, name
        assert read_jsonl(str(path)) == [{"epoch": 1}, {"epoch": 2}], name
    assert records.lines(tmp_path / "none" / "metrics.jsonl") is None
    assert read_jsonl(str(tmp_path / "none" / "metrics.jsonl")) == []


def test_pack_folds_runs_and_keeps_runs_without_records(tmp_path):
    exp = tmp_path / "sanstype"
    for run, n in (("cpu/main/a-s0", 3), ("cpu/main/b-s0", 1), ("cpu/main/c-s0", 0)):
        (exp / run).mkdir(parents=True)
        (exp / run / "eval_test.jsonl").write_text("".join(f'{{"index": {i}, "run": "{run}"}}\n' for i in range(n)))
    (exp / "cpu" / "main" / "b-s0" / "eval_ood.jsonl.gz").write_bytes(gzip.compress(b'{"index": 0}\n'))
    written = records.pack(str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == ["eval_ood.jsonl.xz", "eval_test.jsonl.xz"]
    assert [p for p in exp.rglob("eval_*") if "packed" not in p.parts] == []  # the run files are folded in
    assert records.lines(exp / "cpu" / "main" / "a-s0" / "eval_test.jsonl") == [
        f'{{"index": {i}, "run": "cpu/main/a-s0"}}' for i in range(3)]
    assert records.lines(exp / "cpu" / "main" / "c-s0" / "eval_test.jsonl") == []  # held, with no records
    assert records.lines(exp / "cpu" / "main" / "c-s0" / "eval_ood.jsonl") is None  # not held
    assert records.lines(exp / "cpu" / "main" / "b-s0" / "eval_ood.jsonl") == ['{"index": 0}']
    # interleaved example by example: the runs' first lines, then their second ones
    runs, by_run = records.read_pack(str(exp / "packed" / "eval_test.jsonl.xz"))
    assert runs == ["cpu/main/a-s0", "cpu/main/b-s0", "cpu/main/c-s0"] and len(by_run["cpu/main/a-s0"]) == 3
    before = (exp / "packed" / "eval_test.jsonl.xz").read_bytes()
    assert records.pack(str(tmp_path)) == []  # nothing loose: nothing written
    (exp / "cpu" / "main" / "b-s0" / "eval_test.jsonl").write_text('{"index": 0, "run": "cpu/main/b-s0"}\n')
    assert records.pack(str(tmp_path)) == []  # the same records again: the pack is not rewritten
    assert (exp / "packed" / "eval_test.jsonl.xz").read_bytes() == before
