"""A run's JSON-lines records (metrics.jsonl, eval_<split>.jsonl), read wherever they are kept.

A run directory under runs/ holds them as plain files. The committed archive (results/runs, written by
scripts/archive_runs.py) keeps the same records in less space, losslessly:

    <run>/metrics.jsonl.xz                      a run's log, xz-compressed
    <experiment>/packed/eval_<split>.jsonl.xz   the per-example records of every run of the experiment

A pack holds the records of one file name for every run under <experiment>/, interleaved example by
example (line 1 of every run, then line 2, ...), each line `<run>\\t<record>` where <run> is the run's
directory relative to <experiment>/. The runs of an experiment share their inputs and most of their
outputs, so the packed records take a quarter of the space of one compressed file per run.

`lines(path)` reads the file a run directory would hold at `path` in any of these forms (plain, .xz, .gz,
packed), so that every reader -- core.runs.read_jsonl, the reports, `errors` -- reads a run in runs/ and
in the archive alike. `pack(root)` folds the per-run record files under an archive root into packs.
"""
import gzip
import json
import lzma
import os
import re
from collections import defaultdict

from .io import atomic_path

PACKED = "packed"  # the folder of an experiment's packs, beside its preset folders
COMPRESSED = {".xz": lzma.open, ".gz": gzip.open}
PACKABLE = re.compile(r"(eval_.+\.jsonl)(\.xz|\.gz)?")  # per-example records; a run's metrics stay with it
_HEADER = "#runs\t"  # a pack's first line: the JSON list of its runs (a run may have no records)


def lines(path):
    """The lines (without newline) of the JSON-lines file a run directory would hold at `path`, read from
    the file itself, its .xz or .gz, or the pack of an experiment folder above the run; None when none
    holds it."""
    path = os.fspath(path)
    for stored in (path, *(path + ext for ext in COMPRESSED)):
        if os.path.exists(stored):
            return read_file(stored)
    run_dir, name = os.path.split(os.path.abspath(path))
    folder = run_dir
    while os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
        pack_path = os.path.join(folder, PACKED, name + ".xz")
        if os.path.isfile(pack_path):
            got = _from_pack(pack_path, os.path.relpath(run_dir, folder).replace(os.sep, "/"))
            if got is not None:
                return got
    return None


def read_file(path):
    """The lines of one file, decompressed by its extension (.xz, .gz) or plain."""
    opener = COMPRESSED.get(os.path.splitext(path)[1], open)
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


# ---------------------------------------------------------------- reading packs

_CACHE = {}  # pack path -> (stamp, its runs, {run: lines} of the runs not yet read)


def _from_pack(pack_path, run):
    """One run's lines from a pack. A pack is decompressed once for all its runs (a report reads them all);
    each run's lines are handed out once and then dropped, so the cache does not hold a second copy of
    what the caller keeps. A run asked for again decompresses the pack again."""
    st = os.stat(pack_path)
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(pack_path)
    if cached is None or cached[0] != stamp or (run in cached[1] and run not in cached[2]):
        runs, by_run = read_pack(pack_path)
        cached = _CACHE[pack_path] = (stamp, frozenset(runs), by_run)
    if run not in cached[1]:
        return None
    return cached[2].pop(run, [])


def read_pack(pack_path):
    """(runs, {run: [lines]}) of a pack."""
    text = read_file(pack_path)
    if not text or not text[0].startswith(_HEADER):
        raise ValueError(f"{pack_path}: not a pack of run records (no {_HEADER.strip()!r} line)")
    runs = json.loads(text[0][len(_HEADER):])
    by_run = {r: [] for r in runs}
    for line in text[1:]:
        run, _, record = line.partition("\t")
        by_run[run].append(record)
    return runs, by_run


# ---------------------------------------------------------------- writing

def write_xz(path, data):
    """`data` (bytes) xz-compressed to `path`, atomically. The same bytes give the same file (xz records
    no time or name), so archiving the same records again changes nothing in git; a file that already
    holds them is left alone (decompressing is much cheaper than compressing)."""
    if os.path.exists(path):
        try:
            with lzma.open(path, "rb") as f:
                if f.read() == data:
                    return
        except (OSError, EOFError, lzma.LZMAError):
            pass  # damaged: written again
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(lzma.compress(data, preset=6))


def pack_text(by_run):
    """A pack's text from {run: [lines]}: the header, then the runs' lines interleaved line by line."""
    runs = sorted(by_run)
    out = [_HEADER + json.dumps(runs)]
    for i in range(max((len(v) for v in by_run.values()), default=0)):
        out += [f"{r}\t{by_run[r][i]}" for r in runs if i < len(by_run[r])]
    return "\n".join(out) + "\n"


def pack(root):
    """Fold the per-example record files of every run under each experiment folder of `root` (the
    archive: root/<experiment>/...) into root/<experiment>/packed/<name>.xz, then remove them. A run's
    file replaces what the pack held for that run; the pack's other runs are kept. A pack is rewritten
    only when its records changed. Returns the packs written."""
    written = []
    for exp in sorted(os.listdir(root)):
        exp_dir = os.path.join(root, exp)
        if not os.path.isdir(exp_dir):
            continue
        loose = defaultdict(dict)  # name -> {run: file}
        for d, dirs, files in os.walk(exp_dir):
            dirs[:] = sorted(x for x in dirs if not (d == exp_dir and x == PACKED))
            for f in sorted(files):
                m = PACKABLE.fullmatch(f)
                if m:
                    run = os.path.relpath(d, exp_dir).replace(os.sep, "/")
                    loose[m.group(1)].setdefault(run, []).append(os.path.join(d, f))
        for name, by_file in sorted(loose.items()):
            pack_path = os.path.join(exp_dir, PACKED, name + ".xz")
            old = read_pack(pack_path)[1] if os.path.exists(pack_path) else {}
            new = dict(old)
            for run, paths in by_file.items():
                if len(paths) > 1:
                    raise ValueError(f"{run}: {name} is held twice ({', '.join(map(os.path.basename, paths))})")
                new[run] = [x for x in read_file(paths[0]) if x.strip()]
            if new != old:
                write_xz(pack_path, pack_text(new).encode("utf-8"))
                written.append(pack_path)
            for paths in by_file.values():
                os.remove(paths[0])
    _CACHE.clear()
    return written
