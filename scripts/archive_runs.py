"""Copy the small records of every finished run (config, results, metrics, sample grid, per-program
evaluation records) out of runs/.

runs/ holds checkpoints (megabytes per run) and is not committed, so a report built from it cannot be
rebuilt on another machine. This copies, for each run directory that has a results.json, the files
the tables and the report read — a few kilobytes per run — into a mirror of the same layout
(default results/runs/), which is committed. The code experiments' per-program records
(`eval_<split>.jsonl`: source, gold, outputs, outcomes, diagnostics; ~1 MB per split) are kept
gzip-compressed (~10x smaller) so that `python -m composed_ft.code errors` can reread any archived run.
`scripts/make_report.py --runs results/runs` then rebuilds results/REPORT.md anywhere, and runs from
earlier sessions stay in it.

    python scripts/archive_runs.py [--runs runs] [--out results/runs]

A run in the archive is replaced only by a finished run at the same path; records whose run
directory has since been deleted are kept.
"""
import argparse
import gzip
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.core.errors import UserError, cli_entry  # noqa: E402
from composed_ft.core.io import atomic_path  # noqa: E402

# what tables.collect, the table CLIs and make_report.py read from a run directory
RUN_FILES = ("config.json", "results.json", "metrics.jsonl", "samples.png")
# experiment-level summaries (the SPoC gold ceiling) that live beside the runs
EXTRA_FILES = ("spoc_summary.json",)


def archive(runs_root, out_root):
    """Copy records; returns the list of run directories archived (relative to runs_root)."""
    if not os.path.isdir(runs_root):
        raise UserError(f"{runs_root}: no such run directory")
    from composed_ft.code.report import backfill
    backfill(runs_root)  # summaries derived from the per-example records (the gated + Π row)
    done = []
    for d, _, files in sorted(os.walk(runs_root)):
        wanted = RUN_FILES if "results.json" in files else EXTRA_FILES
        keep = [f for f in wanted if f in files]
        if wanted is RUN_FILES:  # + the summaries of re-evaluations (`evaluate`: eval_beam<k>[_last].json)
            keep += sorted(f for f in files if f.startswith("eval_") and f.endswith(".json"))
            # + the results of a run before `--extend` continued it to a larger budget (results_<budget>.json)
            keep += sorted(f for f in files if f.startswith("results_") and f.endswith(".json"))
        if not keep or (wanted is RUN_FILES and "config.json" not in files):
            continue
        rel = os.path.relpath(d, runs_root)
        for f in keep:
            with atomic_path(os.path.join(out_root, rel, f)) as tmp:
                shutil.copyfile(os.path.join(d, f), tmp)
        if wanted is RUN_FILES:
            for f in sorted(f for f in files if f.startswith("eval_") and f.endswith(".jsonl")):
                # mtime 0 and no file name in the header: the same records give the same bytes
                with open(os.path.join(d, f), "rb") as src, atomic_path(os.path.join(out_root, rel, f + ".gz")) as tmp:
                    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                        shutil.copyfileobj(src, gz)
        if wanted is RUN_FILES:
            done.append(rel)
    return done


@cli_entry
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="runs", help="root of the run directories (default: runs)")
    p.add_argument("--out", default="results/runs", help="archive root (default: results/runs)")
    a = p.parse_args(argv)
    done = archive(a.runs, a.out)
    print(f"archive_runs: {len(done)} finished runs from {a.runs} recorded under {a.out}")


if __name__ == "__main__":
    main()
