"""The fonts dataset: its format, and the per-face validation and rendering behind it.

`python -m composed_ft.imggen build-fonts` (build_fonts.py) scans the font directories,
validates, filters and dedupes the faces, renders them at 32x32 (or 64x64) and writes

  * `<out>.npz` with key `glyphs`: uint8 [N, 62, S, S], INK = 255 on BACKGROUND = 0, characters in
    the order of `CHARS`;
  * `<out without .npz>.manifest.tsv`: one row per font (index, file, face_index, family, style,
    package, license, caps_only).

`load_fonts(path)` reads both back. See ../shared/FONTS.md for the measured facts behind the
recipe. This module holds steps 1, 2 and 4 of the pipeline; font_filters.py step 3, font_licenses.py
the manifest's package and licence columns, build_fonts.py the CLI that runs them in order:

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
import hashlib
import io
import logging
import os
import zipfile

import numpy as np

from composed_ft.core.errors import UserError
from composed_ft.core.io import atomic_path

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

MIN_DISTINCT = 30          # fewer distinct glyph bitmaps out of 62: degenerate
CAPS_ONLY_MIN = 20         # at least this many of a-z identical to A-Z: flagged caps-only
MAX_CANVAS_FACTOR = 8      # a glyph bbox larger than this many em sizes is broken
MANIFEST_COLUMNS = ("index", "file", "face_index", "family", "style", "package", "license", "caps_only")


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
