"""`python -m composed_ft.imggen build-fonts`: scan, validate, render, filter and write the fonts
dataset (the pipeline in fonts.py's docstring). `add_args`/`run` are what the package CLI calls."""
import argparse
import collections
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

from composed_ft.core.errors import UserError
from composed_ft.core.progress import progress_enabled
from composed_ft.imggen.font_filters import family_cap_mask, small_vectors, symbol_mask, visual_duplicates
from composed_ft.imggen.font_licenses import add_package_and_license
from composed_ft.imggen.fonts import NUM_CHARS, default_font_dirs, process_file, scan_font_files, write_fonts

log = logging.getLogger(__name__)

DEFAULT_FAMILY_CAP = 20
DROP_REASONS = ("load_error", "missing_glyphs", "blank_glyphs", "degenerate", "duplicate_file",
                "symbol", "duplicate_visual", "family_cap")


def add_args(parser):
    """Add the build-fonts options to an argparse (sub)parser."""
    parser.add_argument("--font-dir", action="append", default=[], metavar="DIR",
                        help="extra directory to scan for font files (repeatable)")
    parser.add_argument("--no-system-fonts", action="store_true",
                        help="scan only the --font-dir directories (not the system font dirs "
                             "and data/fonts-extra)")
    parser.add_argument("--out", default=None,
                        help="output .npz; the manifest goes beside it as <out minus .npz>"
                             ".manifest.tsv (default: data/fonts/fonts32.npz, fonts64.npz for "
                             "--size 64)")
    parser.add_argument("--size", type=int, default=32, choices=(32, 64),
                        help="glyph image side in pixels (default: %(default)s)")
    parser.add_argument("--per-family-cap", type=int, default=DEFAULT_FAMILY_CAP, metavar="N",
                        help="keep at most N faces per font family, picked to be as different "
                             "from each other as possible (0 = no cap; default: %(default)s). A "
                             "usual family (about 9 weights x upright/italic) fits; what it trims "
                             "are the big weight x width x optical-size series (Noto Sans: 73 "
                             "faces after dedupe) that would otherwise crowd the dataset")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes for validation and rendering (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=0, metavar="N",
                        help="only process the first N font files found (for tests; 0 = all)")
    return parser


def run(args):
    """Build the dataset described by parsed `args` (see add_args). Returns None (CLIs pass the
    return value to sys.exit); build_from_args returns the summary instead."""
    build_from_args(args)


def build_from_args(args):
    """Like run(args), returning the summary dict (counts per drop reason, kept, seconds)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    for d in args.font_dir:
        if not os.path.isdir(d):
            raise UserError(f"--font-dir {d}: no such directory")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    out = args.out or os.path.join("data", "fonts", f"fonts{args.size}.npz")
    dirs = [] if args.no_system_fonts else default_font_dirs()
    dirs += [os.path.abspath(d) for d in args.font_dir]
    files = scan_font_files(dirs)
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise UserError("no font files found in " + ", ".join(dirs or ["(no directories)"]))
    log.info("scanning %d font files in %d directories with %d job(s)", len(files), len(dirs), args.jobs)
    glyphs, meta, summary = build(files, size=args.size, jobs=args.jobs,
                                  per_family_cap=args.per_family_cap)
    if len(glyphs) == 0:
        raise UserError("no usable font faces found (see the drop counts above)")
    t = time.time()
    add_package_and_license(meta)
    log.info("packages and licences looked up (%.1f s)", time.time() - t)
    write_fonts(out, glyphs, meta)
    summary["seconds"] = round(time.time() - t0, 1)
    print_summary(summary, out)
    return summary


def print_summary(summary, out):
    lines = [f"fonts dataset: {out}",
             f"  font files scanned: {summary['files']}",
             f"  faces scanned:      {summary['faces']}",
             f"  faces kept:         {summary['kept']}  (caps-only flagged: {summary['caps_only']})"]
    for r in DROP_REASONS:
        lines.append(f"  dropped {r + ':':<18}{summary['dropped'].get(r, 0)}")
    lines.append(f"  time: {summary['seconds']} s")
    print("\n".join(lines), flush=True)


def _progress(iterable, total, desc):
    """tqdm bar on a terminal; otherwise a log line every ~10% so a long build shows it lives."""
    if not progress_enabled():
        return _log_every(iterable, total, desc)
    try:
        from tqdm import tqdm
    except ImportError:
        return _log_every(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc, unit="file", dynamic_ncols=True)


def _log_every(iterable, total, desc):
    step = max(1, total // 10)
    t0 = time.time()
    for n, item in enumerate(iterable, 1):
        yield item
        if n % step == 0 or n == total:
            log.info("%s: %d/%d files (%.0f s)", desc, n, total, time.time() - t0)


def build(files, size=32, jobs=1, per_family_cap=0):
    """Validate, render and filter the faces of `files` (in keep order).

    Returns (glyphs uint8 [N, 62, size, size], meta list of dicts, summary dict)."""
    tasks = [(i, p, size) for i, p in enumerate(files)]
    results = []
    if jobs > 1 and len(tasks) > 1:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(jobs) as pool:
            for r in _progress(pool.imap_unordered(process_file, tasks, chunksize=1), len(tasks), "fonts"):
                results.extend(r)
    else:
        for t in _progress(tasks, len(tasks), "fonts"):
            results.extend(process_file(t))
    results.sort(key=lambda r: (r["file_idx"], r["face_index"]))

    dropped = collections.Counter()
    for r in results:
        if r["status"] != "ok":
            dropped[r["status"]] += 1
            log.debug("drop %s#%d: %s %s", r["path"], r["face_index"], r["status"], r.get("error", ""))
    ok = [r for r in results if r["status"] == "ok"]

    # 1. byte-identical files (same face index)
    seen, cand = set(), []
    for r in ok:
        key = (r["sha1"], r["face_index"])
        if key in seen:
            dropped["duplicate_file"] += 1
        else:
            seen.add(key)
            cand.append(r)
    glyphs = np.stack([r["glyphs"] for r in cand]) if cand else np.zeros((0, NUM_CHARS, size, size), np.uint8)
    vecs = small_vectors(glyphs)
    shapes = np.stack([r["shapes"] for r in cand]) if cand else np.zeros((0, NUM_CHARS, 256), np.float16)
    caps = np.array([bool(r["caps_only"]) for r in cand], bool)

    # 2. symbol fonts, 3. visual duplicates, 4. family cap -- each on the survivors of the last
    keep = np.ones(len(cand), bool)
    for reason, fn in (("symbol", lambda idx: symbol_mask(shapes[idx], caps[idx])),
                       ("duplicate_visual", lambda idx: visual_duplicates(vecs[idx])),
                       ("family_cap", lambda idx: family_cap_mask(
                           vecs[idx], [cand[i]["family"] for i in idx], per_family_cap))):
        idx = np.flatnonzero(keep)
        t = time.time()
        drop = fn(idx) if len(idx) else np.zeros(0, bool)
        log.info("%s check: %d of %d faces dropped (%.1f s)", reason, drop.sum(), len(idx), time.time() - t)
        keep[idx[drop]] = False
        dropped[reason] += int(drop.sum())
        if reason == "symbol" and drop.any():
            log.info("symbol fonts dropped: %s", ", ".join(
                sorted({cand[i]["family"] or os.path.basename(cand[i]["path"]) for i in idx[drop]})[:40]))

    final = np.flatnonzero(keep)
    meta = [dict(file=cand[i]["path"], face_index=cand[i]["face_index"], family=cand[i]["family"],
                 style=cand[i]["style"], caps_only=bool(cand[i]["caps_only"])) for i in final]
    summary = dict(files=len(files), faces=len(results), kept=len(final),
                   caps_only=sum(m["caps_only"] for m in meta),
                   dropped={r: dropped.get(r, 0) for r in DROP_REASONS})
    return glyphs[final], meta, summary


def main(argv=None):
    """Standalone entry (the package CLI normally dispatches `build-fonts` to add_args/run)."""
    parser = add_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    try:
        run(parser.parse_args(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
