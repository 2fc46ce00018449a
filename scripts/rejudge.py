"""Judge archived model outputs again and compare with the verdicts recorded beside them: a check that a
change to the judge leaves real outcomes alone.

    python scripts/rejudge.py results/runs/sanstype/cpu/main/pretrain-s0/eval_ood.jsonl \
        --data data/sanstype-paper --split ood [--n 500] [--row base] [--batch 64] [--jobs 2] [--out v.json]

Each record's program (`<row>.pred`, detokenized as the evaluation does) is judged on the split's test
case with the data set's comparison; the script prints the outcome counts, recorded and now, and every
record whose outcome changed. --out writes the new outcomes (a JSON list) for comparing two judges.
The judge is whichever `composed_ft` Python imports (PYTHONPATH=<another checkout> judges with that one).
"""
import argparse
import collections
import json
import os
import re
import sys
import time

try:
    import composed_ft  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code.cpp_tokenize import detokenize_program  # noqa: E402
from composed_ft.code.dataset import describe, load_split  # noqa: E402
from composed_ft.code.judge import BATCH, evaluate_programs  # noqa: E402
from composed_ft.core.records import lines as stored_lines  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records", help="a run's eval_<split>.jsonl (in runs/, or archived: results/runs packs them)")
    p.add_argument("--data", required=True, help="the run's data set")
    p.add_argument("--split", required=True)
    p.add_argument("--n", type=int, default=500, help="the first N records")
    p.add_argument("--row", default="base", help="which judged row of each record: base or denoised")
    p.add_argument("--batch", type=int, default=BATCH, help="programs per g++ process (0: one each)")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--out", help="write the new outcomes here (JSON)")
    a = p.parse_args(argv)
    found = stored_lines(re.sub(r"\.(gz|xz)$", "", a.records))  # as a run dir holds it, or archived (packed)
    if found is None:
        p.error(f"{a.records}: no such records")
    recs = [json.loads(line) for line in found if line.strip()][: a.n]
    man = describe(a.data)
    exs = load_split(a.data, a.split)
    programs = [detokenize_program(r[a.row]["pred"], indent_anywhere=man["indent_anywhere"]) for r in recs]
    tests = [[(exs[r["index"]]["inp"], exs[r["index"]]["out"])] for r in recs]
    t = time.perf_counter()
    res = evaluate_programs(programs, tests, jobs=a.jobs, compare=man["compare"], batch=a.batch,
                            std=man.get("judge_std"))
    secs = time.perf_counter() - t
    was = [r[a.row]["outcome"] for r in recs]
    now = [r["outcome"] for r in res]
    print(f"{len(recs)} programs judged in {secs:.1f} s (batch {a.batch})")
    print("recorded:", dict(collections.Counter(was)))
    print("now:     ", dict(collections.Counter(now)))
    diff = [i for i, (x, y) in enumerate(zip(was, now)) if x != y]
    print(f"{len(diff)} outcomes differ")
    for i in diff:
        print(f"  record {recs[i]['index']}: {was[i]} -> {now[i]}\n    {programs[i]!r}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(now, fh)
    return diff


if __name__ == "__main__":
    main()
