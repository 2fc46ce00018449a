"""The four-file text format of the paper's code data sets, read and written.

Per split, one example per line in each file:
  <split>.src  pseudocode (lines joined by ` $ `)
  <split>.tgt  tokenized code (see cpp_tokenize: ` $ ` between lines, `~` per indent level)
  <split>.inp  the test input, every newline written as a TAB
  <split>.out  the gold output, every newline written as a TAB (same escape as .inp)
The TAB escape is exact as long as inputs and outputs contain no TAB or carriage return; the
writer refuses text that does. Unlabeled splits have only .src/.tgt (or only .tgt).
"""
import json
import os

from composed_ft.core.errors import UserError
from composed_ft.core.io import write_text

FIELDS = ("src", "tgt", "inp", "out")
MANIFEST = "dataset.json"
AUTHORS_HEADER, AUTHORS_FOOTER = "int main () {", "return 0; }"


def describe(directory):
    """What a data directory holds: its dataset.json (make-sanstype, make-spoc) or, without one, what
    its files show. The authors' SansType release has no manifest and is recognized by its
    untokenized header and footer (`int main () {` ... `return 0; }`, `0;` one token, which our
    tokenizer never writes). Keys every caller may read:
      dataset          sanstype | spoc | four-file
      indent_anywhere  `~` is a layout marker wherever it stands (SansType: never C++'s bitwise not)
      compare          how a program's stdout is compared with the gold output: exact, or rstrip
                       (the authors compared stdout with the stripped gold line)"""
    path = os.path.join(directory, MANIFEST)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                m = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a valid JSON manifest ({e})") from None
        if not isinstance(m, dict):
            raise UserError(f"{path}: the manifest must be a JSON object")
    else:
        m = {"dataset": "four-file"}
        tgt = os.path.join(directory, "train.tgt")
        if os.path.exists(tgt):
            with open(tgt, encoding="utf-8", errors="replace") as fh:
                first = fh.readline().rstrip("\n")
            if first.startswith(AUTHORS_HEADER + " ") and first.endswith(" " + AUTHORS_FOOTER):
                m = {"dataset": "sanstype", "variant": "authors", "compare": "rstrip",
                     "note": "the authors' SansType format (recognized by its header and footer)"}
    m.setdefault("dataset", "four-file")
    m.setdefault("indent_anywhere", m["dataset"] == "sanstype")
    m.setdefault("compare", "exact")
    return m


def require(directory):
    """A clear error when a stage is pointed at a data set that is not there."""
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: data set not found (make it with `python -m composed_ft.code make-sanstype`)")


def escape_io(text):
    if "\t" in text or "\r" in text:
        raise ValueError(f"test input/output must not contain TAB or CR: {text[:60]!r}")
    return text.replace("\n", "\t")


def unescape_io(line):
    return line.replace("\t", "\n")


def _read_lines(path):
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e})") from None
    if text and not text.endswith("\n"):
        text += "\n"
    lines = text.split("\n")[:-1]
    for i, ln in enumerate(lines, 1):
        if "\r" in ln:
            raise UserError(f"{path}:{i}: carriage return inside a line (Windows line endings?)")
    return lines


def split_files(directory, split):
    return {f: os.path.join(directory, f"{split}.{f}") for f in FIELDS}


def load_split(directory, split):
    """Examples of `<directory>/<split>.{src,tgt,inp,out}` as dicts with keys src, tgt, inp, out
    (inp/out: real newlines; None for an unlabeled split without them, src None without .src)."""
    paths = split_files(directory, split)
    present = {f: os.path.exists(p) for f, p in paths.items()}
    if not present["tgt"]:
        raise UserError(f"{paths['tgt']}: missing (every split needs a .tgt file)")
    if present["inp"] != present["out"]:
        have, lack = ("inp", "out") if present["inp"] else ("out", "inp")
        raise UserError(f"{paths[lack]}: missing while {paths[have]} exists (need both or neither)")
    cols = {f: _read_lines(p) for f, p in paths.items() if present[f]}
    n = len(cols["tgt"])
    for f, lines in cols.items():
        if len(lines) != n:
            raise UserError(f"{paths[f]}: {len(lines)} lines but {paths['tgt']} has {n}; "
                            "the files of a split must have one example per line each")
    for f in ("src", "tgt"):
        for i, ln in enumerate(cols.get(f, []), 1):
            if not ln.strip():
                raise UserError(f"{paths[f]}:{i}: empty example")
    out = []
    for i in range(n):
        ex = {"src": cols["src"][i] if "src" in cols else None, "tgt": cols["tgt"][i],
              "inp": unescape_io(cols["inp"][i]) if "inp" in cols else None,
              "out": unescape_io(cols["out"][i]) if "out" in cols else None}
        out.append(ex)
    return out


def write_split(directory, split, examples):
    """Write examples (dicts with src/tgt and optionally inp/out) atomically, one file per field."""
    paths = split_files(directory, split)
    for f in FIELDS:
        vals = [ex.get(f) for ex in examples]
        if all(v is None for v in vals):
            continue
        if any(v is None for v in vals):
            raise ValueError(f"{split}: some examples lack {f}")
        if f in ("inp", "out"):
            vals = [escape_io(v) for v in vals]
        for v in vals:
            if "\n" in v:
                raise ValueError(f"{split}.{f}: an example contains a newline: {v[:60]!r}")
        write_text(paths[f], "".join(v + "\n" for v in vals))
