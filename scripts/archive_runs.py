"""Copy the records of every finished run (config, results, metrics, per-example evaluation records,
the main runs' sample grids) out of runs/, compressed.

runs/ holds checkpoints (megabytes per run) and is not committed, so a report built from it cannot be
rebuilt on another machine. This copies, for each run directory that has a results.json, the files the
tables, the report and `python -m composed_ft.code errors` read into a mirror of the same layout (default
results/runs/), which is committed. `scripts/make_report.py --runs results/runs` then rebuilds
results/REPORT.md anywhere, byte for byte, and runs from earlier sessions stay in it.

What the archive keeps, losslessly, and how (composed_ft/core/records.py reads every form):
  - config.json, results.json (+ eval_*.json, results_<budget>.json): as they are;
  - metrics.jsonl: as metrics.jsonl.xz (a 16,000-epoch imggen log: 8.7 MB -> 1.9 MB);
  - eval_<split>.jsonl (per example: source, gold, outputs, outcomes, diagnostics): folded into one pack per
    experiment and file name, <experiment>/packed/eval_<split>.jsonl.xz (the runs of an experiment share
    their programs: a quarter of the size of one compressed file per run);
  - samples.png: of the main runs only (the report's figure reads them); the ablations' pictures, read by
    nothing, stay in runs/.

    python scripts/archive_runs.py [--runs runs] [--out results/runs]

A run in the archive is replaced only by a finished run at the same path; records whose run
directory has since been deleted are kept. Archiving the same runs again writes the same bytes.
"""
import argparse
import gzip
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.core import records  # noqa: E402
from composed_ft.core.errors import UserError, cli_entry  # noqa: E402
from composed_ft.core.io import atomic_path  # noqa: E402
from composed_ft.core.runs import read_json  # noqa: E402

# what tables.collect, the table CLIs and make_report.py read from a run directory (metrics.jsonl: compressed)
RUN_FILES = ("config.json", "results.json")
METRICS = "metrics.jsonl"
PICTURE, PICTURE_TAGS = "samples.png", ("main",)  # the report's figure reads the main runs' sample grids
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
        is_run = "results.json" in files and "config.json" in files
        wanted = RUN_FILES if is_run else EXTRA_FILES
        keep = [f for f in wanted if f in files]
        if is_run:  # + the summaries of re-evaluations (`evaluate`: eval_beam<k>[_last].json)
            keep += sorted(f for f in files if f.startswith("eval_") and f.endswith(".json"))
            # + the results of a run before `--extend` continued it to a larger budget (results_<budget>.json)
            keep += sorted(f for f in files if f.startswith("results_") and f.endswith(".json"))
            # + the per-example records, copied as they are and then packed (records.pack)
            keep += sorted(f for f in files if f.startswith("eval_") and f.endswith(".jsonl"))
            if PICTURE in files and read_json(os.path.join(d, "config.json"))["config"].get("tag") in PICTURE_TAGS:
                keep.append(PICTURE)
        if not keep or ("results.json" in files and not is_run):
            continue
        rel = os.path.relpath(d, runs_root)
        for f in keep:
            with atomic_path(os.path.join(out_root, rel, f)) as tmp:
                shutil.copyfile(os.path.join(d, f), tmp)
        if is_run:
            if METRICS in files:
                with open(os.path.join(d, METRICS), "rb") as src:
                    records.write_xz(os.path.join(out_root, rel, METRICS + ".xz"), src.read())
            done.append(rel)
    lean(out_root)
    return done


def lean(out_root):
    """The archive in its compressed forms: every metrics.jsonl as metrics.jsonl.xz (an older plain or .gz
    copy is replaced), every run's per-example records folded into its experiment's packs. Idempotent."""
    for d, _, files in sorted(os.walk(out_root)):
        for f, opener in ((METRICS, open), (METRICS + ".gz", gzip.open)):
            if f in files:
                with opener(os.path.join(d, f), "rb") as src:
                    records.write_xz(os.path.join(d, METRICS + ".xz"), src.read())
                os.remove(os.path.join(d, f))
    records.pack(out_root)


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
