"""The fonts dataset: every usable Latin font face on this machine rendered for 0-9A-Za-z.

`python -m composed_ft.imggen build-fonts` (see `add_args`/`run`) scans the font directories,
validates, filters and dedupes the faces, renders them at 32x32 (or 64x64) and writes

  * `<out>.npz` with key `glyphs`: uint8 [N, 62, S, S], INK = 255 on BACKGROUND = 0, characters in
    the order of `CHARS`;
  * `<out without .npz>.manifest.tsv`: one row per font (index, file, face_index, family, style,
    package, license, caps_only).

`load_fonts(path)` reads both back. See ../shared/FONTS.md for the measured facts behind the
recipe. Pipeline:

  1. scan: system font dirs, data/fonts-extra (what scripts/install_fonts.sh unpacked), --font-dir;
  2. per file, in --jobs processes: load every face (every index of a .ttc/.otc), render the 62
     characters and two code points no font has (U+10FFFD, U+0378 -> the .notdef glyph), reject the
     face if a character is blank or equals a .notdef probe, reject it if fewer than
     MIN_DISTINCT glyph bitmaps are distinct, flag caps-only faces, render the kept glyphs at one
     uniform scale per face (from the largest ink bbox over the 62 characters), each centred;
  3. in the parent: drop duplicate files (sha1 + face index), symbol fonts (nearest-prototype
     check), visual duplicates (cosine >= 0.995 between 62x16x16 glyph vectors) and, optionally,
     faces beyond --per-family-cap in one family;
  4. write the arrays and the manifest atomically.
"""
import argparse
import collections
import gzip
import hashlib
import io
import logging
import multiprocessing
import os
import re
import subprocess
import sys
import time
import zipfile

import numpy as np

from composed_ft.core.errors import UserError
from composed_ft.core.io import atomic_path
from composed_ft.core.progress import progress_enabled

log = logging.getLogger(__name__)

CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NUM_CHARS = len(CHARS)
INK = 255
BACKGROUND = 0
# Code points no font maps: what they render as is the face's .notdef glyph (a box or a blank).
NOTDEF_PROBES = ("\U0010FFFD", "\u0378")
FONT_EXTENSIONS = (".ttf", ".otf", ".ttc", ".otc", ".pfb", ".pfa", ".t1", ".woff", ".woff2")
COLLECTION_EXTENSIONS = (".ttc", ".otc")
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/share/texlive/texmf-dist/fonts/type1",
    "/usr/share/texlive/texmf-dist/fonts/opentype",
    "/usr/share/texlive/texmf-dist/fonts/truetype",
    "/usr/share/texmf/fonts",
)
SYSTEM_FONT_GLOBS = "/usr/share/fonts-*"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTRA_DIR_NAME = os.path.join("data", "fonts-extra")
TEX_LICENSE_DEFAULT = "LPPL (texlive-fonts-extra)"

MIN_DISTINCT = 30          # fewer distinct glyph bitmaps out of 62: degenerate
CAPS_ONLY_MIN = 20         # at least this many of a-z identical to A-Z: flagged caps-only
SYMBOL_MIN_FRACTION = 0.10  # symbol font: fewer of its glyphs with their own char among the 3 nearest prototypes
SYMBOL_TOP_K = 3
SYMBOL_MIN_LETTERS = 0.20  # ... or of its 52 letters
SYMBOL_MIN_LOWER = 0.20    # ... or of its lower case while the capitals hit (cmsy-like)
SYMBOL_BLUR = 0.7          # Gaussian sigma (pixels of the 16x16 shapes) before comparing
DEDUPE_COSINE = 0.995
DEFAULT_FAMILY_CAP = 20
MAX_CANVAS_FACTOR = 8      # a glyph bbox larger than this many em sizes is broken
MANIFEST_COLUMNS = ("index", "file", "face_index", "family", "style", "package", "license", "caps_only")
DROP_REASONS = ("load_error", "missing_glyphs", "blank_glyphs", "degenerate", "duplicate_file",
                "symbol", "duplicate_visual", "family_cap")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------------
def default_font_dirs():
    """System font dirs that exist, plus data/fonts-extra (relative to the cwd and the repo)."""
    import glob

    dirs = list(SYSTEM_FONT_DIRS) + sorted(glob.glob(SYSTEM_FONT_GLOBS))
    dirs += [os.path.join(os.getcwd(), EXTRA_DIR_NAME), os.path.join(REPO_ROOT, EXTRA_DIR_NAME)]
    out, seen = [], set()
    for d in dirs:
        if os.path.isdir(d) and os.path.realpath(d) not in seen:
            seen.add(os.path.realpath(d))
            out.append(os.path.abspath(d))
    return out


def _file_rank(path):
    """Sort key: the first file of a duplicate group is the one kept. Prefer the installed system
    fonts over unpacked ones, OpenType/TrueType over web and Type1 formats."""
    p = path.lower()
    source = 1 if "texlive" in p or "texmf" in p else 0
    ext = os.path.splitext(p)[1]
    fmt = 0 if ext in (".otf", ".ttf", ".ttc", ".otc") else 1 if ext in (".woff", ".woff2") else 2
    return (source, fmt, path)


def scan_font_files(dirs):
    """All regular (non-symlink) font files under `dirs`, deduplicated by real path, in keep order."""
    found, seen = [], set()
    for d in dirs:
        for root, subdirs, names in os.walk(d, followlinks=False):
            subdirs.sort()
            for name in sorted(names):
                if not name.lower().endswith(FONT_EXTENSIONS):
                    continue
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                real = os.path.realpath(path)
                if real not in seen:
                    seen.add(real)
                    found.append(path)
    found.sort(key=_file_rank)
    return found


def collection_size(path):
    """Number of faces in a TrueType/OpenType collection (1 for a single-face file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return 1
    if len(head) == 12 and head[:4] == b"ttcf":
        return max(1, min(int.from_bytes(head[8:12], "big"), 1024))
    return 1


# --------------------------------------------------------------------------------------------
# Per-face validation and rendering (runs in worker processes)
# --------------------------------------------------------------------------------------------
def _render_raw(font, ch, em):
    """Render `ch` in `font`; return its bitmap cropped to the ink (uint8 2-D, maybe 0x0)."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(ch)
    w, h = right - left + 4, bottom - top + 4
    if w > MAX_CANVAS_FACTOR * em or h > MAX_CANVAS_FACTOR * em or w <= 0 or h <= 0:
        raise ValueError(f"glyph bbox {w}x{h} out of range")
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((2 - left, 2 - top), ch, font=font, fill=255)
    a = np.asarray(img)
    rows = np.flatnonzero(a.max(axis=1) >= 16)
    cols = np.flatnonzero(a.max(axis=0) >= 16)
    if len(rows) == 0:
        return np.zeros((0, 0), np.uint8)
    return np.ascontiguousarray(a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])


def _same(a, b):
    return a.shape == b.shape and np.array_equal(a, b)


def render_face(font, size):
    """Validate a loaded PIL font and render it.

    Returns (status, glyphs, caps_only, shapes): status is "ok" or a drop reason; glyphs is uint8
    [62, size, size] (INK on BACKGROUND) when ok; shapes is float16 [62, 256]: every glyph scaled
    on its own to fill 16x16 (for the symbol-font check, which should compare shapes, not sizes)."""
    from PIL import Image

    em = font.size
    raws = [_render_raw(font, ch, em) for ch in CHARS]
    probes = [_render_raw(font, ch, em) for ch in NOTDEF_PROBES]
    probes = [p for p in probes if p.size]
    if any(r.size == 0 for r in raws):
        return "blank_glyphs", None, False, None
    if any(_same(r, p) for r in raws for p in probes):
        return "missing_glyphs", None, False, None
    distinct = len({(r.shape, r.tobytes()) for r in raws})
    if distinct < MIN_DISTINCT:
        return "degenerate", None, False, None
    caps_same = sum(_same(raws[36 + i], raws[10 + i]) for i in range(26))
    caps_only = caps_same >= CAPS_ONLY_MIN

    pad = max(1, size // 32)
    biggest = max(max(r.shape) for r in raws)
    scale = (size - 2 * pad) / biggest
    out = np.zeros((NUM_CHARS, size, size), np.uint8)
    for i, r in enumerate(raws):
        h = min(size, max(1, round(r.shape[0] * scale)))
        w = min(size, max(1, round(r.shape[1] * scale)))
        g = np.asarray(Image.fromarray(r).resize((w, h), Image.Resampling.LANCZOS))
        y, x = (size - h) // 2, (size - w) // 2
        out[i, y: y + h, x: x + w] = g
    if any(out[i].max() < 32 for i in range(NUM_CHARS)):   # vanished at this size (hairlines)
        return "blank_glyphs", None, False, None
    return "ok", out, caps_only, shape_vectors(raws)


def shape_vectors(raws, side=16):
    """Each cropped glyph bitmap scaled on its own (aspect kept) to fit side x side, centred:
    float16 [62, side*side] in [0, 1]."""
    from PIL import Image

    out = np.zeros((len(raws), side, side), np.float32)
    for i, r in enumerate(raws):
        s = side / max(r.shape)
        h, w = min(side, max(1, round(r.shape[0] * s))), min(side, max(1, round(r.shape[1] * s)))
        g = np.asarray(Image.fromarray(r).resize((w, h), Image.Resampling.BOX), np.float32)
        y, x = (side - h) // 2, (side - w) // 2
        out[i, y: y + h, x: x + w] = g / 255.0
    return out.reshape(len(raws), side * side).astype(np.float16)


def process_file(task):
    """Worker: (file index, path, size) -> list of per-face result dicts."""
    idx, path, size = task
    from PIL import ImageFont

    results = []
    try:
        with open(path, "rb") as f:
            data = f.read()
        digest = hashlib.sha1(data).hexdigest()
    except OSError as e:
        return [dict(file_idx=idx, path=path, face_index=0, status="load_error", error=str(e))]
    em = 2 * size
    for face in range(collection_size(path)):
        res = dict(file_idx=idx, path=path, face_index=face, sha1=digest, family="", style="")
        try:
            font = ImageFont.truetype(io.BytesIO(data), size=em, index=face,
                                      layout_engine=ImageFont.Layout.BASIC)
            family, style = font.getname()
            res["family"], res["style"] = family or "", style or ""
            status, glyphs, caps_only, shapes = render_face(font, size)
        except Exception as e:  # noqa: BLE001 - any broken font file is just dropped
            status, glyphs, caps_only, shapes = "load_error", None, False, None
            res["error"] = f"{type(e).__name__}: {e}"
        res.update(status=status, glyphs=glyphs, caps_only=caps_only, shapes=shapes)
        results.append(res)
    return results


# --------------------------------------------------------------------------------------------
# Whole-set filters (parent process)
# --------------------------------------------------------------------------------------------
def small_vectors(glyphs):
    """uint8 [N, 62, S, S] -> float32 [N, 62, 256]: 16x16 box-downsampled glyphs in [0, 1]."""
    n, c, s, _ = glyphs.shape
    f = s // 16
    g = glyphs.reshape(n, c, 16, f, 16, f).astype(np.float32).mean(axis=(3, 5)) / 255.0
    return g.reshape(n, c, 256)


def _normalize(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-8)


def _blur_matrix(side=16, sigma=SYMBOL_BLUR):
    x = np.arange(side)
    k = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


def symbol_mask(shapes, caps_only=None, iterations=2):
    """True for symbol fonts (dingbats, math, runes, scripts mapped onto ASCII ...).

    `shapes`: [N, 62, 256] glyphs each scaled on its own to 16x16 (see shape_vectors), so the
    test compares shapes, not sizes. Every glyph is compared (cosine, after a slight blur so
    hairline and bold strokes still match) with the per-character mean glyphs (prototypes); it
    is a hit when its own character, or the same letter in the other case, is among the
    SYMBOL_TOP_K nearest prototypes. A font is a symbol font when fewer than
    SYMBOL_MIN_FRACTION of its 62 glyphs hit, or fewer than SYMBOL_MIN_LETTERS of its 52 letters
    (symbols on the letters, real digits: e.g. msam, drmsym, Tamil or runic fonts on ASCII), or
    when the capitals hit but the lower case does not (cmsy-like: calligraphic capitals plus
    math symbols; caps-only fonts exempt). The prototypes are recomputed once without the
    flagged fonts."""
    n = len(shapes)
    is_symbol = np.zeros(n, bool)
    if n == 0:
        return is_symbol
    caps_only = np.zeros(n, bool) if caps_only is None else np.asarray(caps_only, bool)
    k = _blur_matrix()
    x = np.asarray(shapes, np.float32).reshape(n, NUM_CHARS, 16, 16)
    unit = _normalize((k @ x @ k.T).reshape(n, NUM_CHARS, 256))         # blur rows and columns
    own = np.arange(NUM_CHARS)
    other = np.where(own < 10, own, np.where(own < 36, own + 26, own - 26))   # A <-> a
    for _ in range(iterations):
        keep = ~is_symbol if (~is_symbol).any() else np.ones(n, bool)
        protos = _normalize(unit[keep].mean(axis=0))                 # [62, 256]
        sims = np.einsum("ncd,kd->nck", unit, protos)                # [N, 62, 62]
        top = np.argsort(-sims, axis=2)[:, :, :SYMBOL_TOP_K]
        hit = (top == own[None, :, None]).any(axis=2) | (top == other[None, :, None]).any(axis=2)
        upper, lower = hit[:, 10:36].mean(axis=1), hit[:, 36:].mean(axis=1)
        is_symbol = ((hit.mean(axis=1) < SYMBOL_MIN_FRACTION)
                     | (hit[:, 10:].mean(axis=1) < SYMBOL_MIN_LETTERS)
                     | ((lower < SYMBOL_MIN_LOWER) & (upper >= 0.5) & ~caps_only))
    return is_symbol


def visual_duplicates(vecs, threshold=DEDUPE_COSINE, block=1024):
    """True for every font whose 62x16x16 glyph vector has cosine >= threshold with an earlier
    kept font (greedy in the given order, so the first of each group is kept)."""
    n = len(vecs)
    flat = _normalize(vecs.reshape(n, -1))
    partners = [[] for _ in range(n)]
    for s in range(0, n, block):
        sims = flat[s: s + block] @ flat.T
        ii, jj = np.nonzero(sims >= threshold)
        for i, j in zip(ii + s, jj):
            if j > i:
                partners[i].append(j)
    dup = np.zeros(n, bool)
    for i in range(n):
        if not dup[i]:
            for j in partners[i]:
                dup[j] = True
    return dup


def family_cap_mask(vecs, families, cap):
    """True for faces beyond `cap` per family; the kept ones are picked by farthest-point sampling
    over the glyph vectors (starting from the first in keep order), so a capped family keeps its
    most different weights/widths/slants."""
    drop = np.zeros(len(vecs), bool)
    if cap <= 0:
        return drop
    groups = collections.defaultdict(list)
    for i, fam in enumerate(families):
        groups[fam.strip().lower()].append(i)
    for members in groups.values():
        if len(members) <= cap:
            continue
        x = vecs[members].reshape(len(members), -1)
        chosen = [0]
        dist = np.linalg.norm(x - x[0], axis=1)
        while len(chosen) < cap:
            k = int(np.argmax(dist))
            chosen.append(k)
            dist = np.minimum(dist, np.linalg.norm(x - x[k], axis=1))
        keep = set(chosen)
        for pos, i in enumerate(members):
            if pos not in keep:
                drop[i] = True
    return drop


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


# --------------------------------------------------------------------------------------------
# Packages and licences
# --------------------------------------------------------------------------------------------
def _extra_package(path):
    """For a file under .../data/fonts-extra/<pkg>/..., the package it was unpacked from."""
    parts = os.path.abspath(path).split(os.sep)
    for k in range(len(parts) - 2):
        if parts[k] == "data" and parts[k + 1] == "fonts-extra":
            return parts[k + 2], os.sep.join(parts[: k + 3])
    return None, None


def _glob_escape(path):
    """dpkg -S takes fnmatch patterns: escape the metacharacters of a literal path."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def dpkg_owners(paths, chunk=200):
    """{path: package} for the paths dpkg knows (one `dpkg -S` call per chunk of paths)."""
    owners = {}
    paths = list(paths)
    for s in range(0, len(paths), chunk):
        try:
            out = subprocess.run(["dpkg", "-S", *map(_glob_escape, paths[s: s + chunk])],
                                 capture_output=True, text=True, check=False).stdout
        except OSError:
            return owners
        for line in out.splitlines():
            k = line.find(": /")
            if k < 0 or line.startswith("diversion "):
                continue
            pkg = line[:k].split(",")[0].strip().split(":")[0]
            owners[line[k + 2:]] = pkg
    return owners


_LICENSE_PATTERNS = (
    (r"SIL Open Font License|\bOFL\b", "OFL-1.1"),
    (r"GUST Font License", "GUST-Font-License"),
    (r"LaTeX Project Public License|\bLPPL\b", "LPPL"),
    (r"Apache License", "Apache-2.0"),
    (r"GNU (Affero|AFFERO)", "AGPL"),
    (r"GNU Lesser|GNU LESSER|\bLGPL\b", "LGPL"),
    (r"GNU General Public License|GNU GENERAL PUBLIC LICENSE|\bGPL\b", "GPL"),
    (r"Bitstream Vera", "Bitstream-Vera"),
    (r"Creative Commons", "CC"),
    (r"public domain", "public-domain"),
    (r"Permission is hereby granted, free of charge", "MIT"),
)


def parse_copyright(path):
    """Short licence name from a Debian copyright file, or the file path when it can't be parsed."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    stanzas = re.split(r"\n\s*\n", text)
    first = None
    for st in stanzas:
        files = re.search(r"^Files:\s*(.*)$", st, re.M)
        lic = re.search(r"^License:[ \t]*(\S.*)$", st, re.M)
        if not files or not lic:
            continue
        name = lic.group(1).strip()
        if files.group(1).strip() == "*":
            return name
        if first is None and not files.group(1).strip().startswith("debian/"):
            first = name
    if first:
        return first
    for pat, name in _LICENSE_PATTERNS:
        if re.search(pat, text):
            return name
    return path


def tex_licenses(licenses_gz):
    """Parse texlive's Licenses.gz: {'texmf-dist/fonts/.../dir': licence} for the '<dir>/*' and
    exact-file patterns listed under each 'package: licence' line."""
    table = {}
    try:
        with gzip.open(licenses_gz, "rt", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError):
        return table
    current = ""
    for line in lines:
        m = re.match(r"^(\S+):\s*(.*)$", line)
        if m and not line.startswith("texmf-dist/"):
            current = m.group(2).strip()
            continue
        line = line.strip()
        if line.startswith("texmf-dist/") and current:
            table[line[:-2] if line.endswith("/*") else line] = current
    return table


def _tex_license(path, table):
    k = path.find("texmf-dist/")
    if k < 0:
        return ""
    rel = path[k:]
    while rel and rel != "texmf-dist":
        if rel in table:
            return table[rel]
        rel = os.path.dirname(rel)
    return ""


def add_package_and_license(meta):
    """Fill 'package' and 'license' of every manifest row (in place)."""
    system = [m["file"] for m in meta if _extra_package(m["file"])[0] is None]
    owners = dpkg_owners(sorted(set(system)))
    copyright_cache, tex_cache = {}, {}
    for m in meta:
        pkg, root = _extra_package(m["file"])
        if pkg is None:
            pkg, root = owners.get(m["file"], ""), "/"
        m["package"] = pkg
        lic = ""
        if pkg.startswith("texlive"):
            lic_gz = os.path.join(root, "usr/share/doc", pkg, "Licenses.gz")
            if lic_gz not in tex_cache:
                tex_cache[lic_gz] = tex_licenses(lic_gz)
            found = _tex_license(m["file"], tex_cache[lic_gz])
            lic = f"{found.upper()} ({pkg})" if found else f"LPPL ({pkg})"
        elif pkg:
            cp = os.path.join(root, "usr/share/doc", pkg, "copyright")
            if cp not in copyright_cache:
                copyright_cache[cp] = parse_copyright(cp)
            lic = copyright_cache[cp]
        m["license"] = lic


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------
def manifest_path(path):
    path = os.fspath(path)
    base = path[:-4] if path.endswith(".npz") else path
    return base + ".manifest.tsv"


def _clean(v):
    return str(v).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_fonts(out, glyphs, meta):
    """Write `out` (.npz, key 'glyphs') and its manifest atomically."""
    glyphs = np.ascontiguousarray(glyphs, dtype=np.uint8)
    assert glyphs.ndim == 4 and glyphs.shape[1] == NUM_CHARS and len(meta) == len(glyphs)
    rows = ["\t".join(MANIFEST_COLUMNS)]
    for i, m in enumerate(meta):
        row = dict(m, index=i, caps_only=int(bool(m.get("caps_only"))))
        rows.append("\t".join(_clean(row.get(c, "")) for c in MANIFEST_COLUMNS))
    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(manifest_path(out)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600 files: readable like any other output
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:      # a file object: np.savez would append .npz to a name
            np.savez_compressed(f, glyphs=glyphs, chars=np.array(CHARS))
        os.chmod(tmp, 0o666 & ~umask)
    log.info("wrote %s (%d fonts, %.1f MB) and %s", out, len(glyphs),
             os.path.getsize(out) / 1e6, manifest_path(out))


def load_fonts(path):
    """Read a fonts dataset: (glyphs uint8 [N, 62, S, S], manifest list of dicts).

    Raises UserError naming the file when it is missing, corrupt or of the wrong shape."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: fonts dataset not found (build it with "
                        f"`python -m composed_ft.imggen build-fonts --out {path}`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "glyphs" not in z.files:
                raise UserError(f"{path}: not a fonts dataset (no 'glyphs' array; keys: {z.files})")
            glyphs = z["glyphs"]
    except UserError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, Exception) as e:  # noqa: BLE001
        raise UserError(f"{path}: corrupt or unreadable fonts dataset ({type(e).__name__}: {e})") from e
    if (glyphs.dtype != np.uint8 or glyphs.ndim != 4 or glyphs.shape[1] != NUM_CHARS
            or glyphs.shape[2] != glyphs.shape[3] or glyphs.shape[0] == 0):
        raise UserError(f"{path}: 'glyphs' has shape {glyphs.shape} dtype {glyphs.dtype}; expected "
                        f"uint8 [N>0, {NUM_CHARS}, S, S]")
    mpath = manifest_path(path)
    try:
        with open(mpath, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(f"{mpath}: manifest of {path} not readable ({e})") from e
    if not lines or lines[0].split("\t") != list(MANIFEST_COLUMNS):
        raise UserError(f"{mpath}: not a fonts manifest (header should be {' '.join(MANIFEST_COLUMNS)})")
    manifest = []
    for line in lines[1:]:
        if not line:
            continue
        cells = line.split("\t")
        if len(cells) != len(MANIFEST_COLUMNS):
            raise UserError(f"{mpath}: malformed row {line!r}")
        row = dict(zip(MANIFEST_COLUMNS, cells))
        row["index"] = int(row["index"])
        row["face_index"] = int(row["face_index"])
        row["caps_only"] = row["caps_only"] == "1"
        manifest.append(row)
    if len(manifest) != len(glyphs):
        raise UserError(f"{mpath}: {len(manifest)} rows but {path} holds {len(glyphs)} fonts")
    return glyphs, manifest


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
