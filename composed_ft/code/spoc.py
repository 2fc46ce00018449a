"""SPoC (Kulal et al. 2019, CC BY 4.0) as full programs, plus extra unlabeled Codeforces code.

Reads the official release layout:
  train/spoc-train.tsv, train/split/spoc-train-{train,eval,test}.tsv, test/spoc-test{p,w}.tsv,
  testcases/<probid>/<probid>_testcases{,_public,_hidden}.txt
TSV columns: text code workerid probid subid line indent; a program starts where `line` resets to
0; an empty `text` marks a line that was not annotated (`int main() {`, `}`, `return 0;`).

The official train split is not available everywhere. When <dir>/train/split/spoc-train-train.tsv
is missing we fall back to <repo>/../shared/data/spoc and use eval as train and test as
validation; the returned `note` says which mapping was used, so every table can print it.
The data is read in place, never copied into the repository.
"""
import csv
import functools
import json
import logging
import os

from composed_ft.code.cpp_tokenize import INDENT, LINE_SEP, tokenize_lines
from composed_ft.core.errors import UserError
from composed_ft.core.io import display_path

log = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO, "data", "spoc")
SHARED_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "spoc"))
DRREPAIR_FILE = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "drrepair", "codeforces-1000.jsonl"))
MAX_TRAIN_CHARS = 1000  # training programs whose tokenized code is longer are dropped
# g++ standard to judge SPoC programs with: `gold-ceiling --dataset spoc` measured it passes more
# gold programs than g++ 12's default gnu++17 (no `gets`, no clashes with C++17's std::size etc.)
JUDGE_STD = "gnu++11"
COLUMNS = ["text", "code", "workerid", "probid", "subid", "line", "indent"]

OFFICIAL = {"train": "train/split/spoc-train-train.tsv", "valid": "train/split/spoc-train-eval.tsv",
            "test": "train/split/spoc-train-test.tsv"}
FALLBACK = {"train": "train/split/spoc-train-eval.tsv", "valid": "train/split/spoc-train-test.tsv"}
TESTS = {"testp": "test/spoc-testp.tsv", "testw": "test/spoc-testw.tsv"}


def read_tsv_programs(path):
    """Programs of one SPoC TSV file: list of dicts with probid, subid, workerid and
    lines [(text, code, indent)]."""
    if not os.path.exists(path):
        raise UserError(f"{path}: missing SPoC file")
    programs = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != COLUMNS:
            raise UserError(f"{path}: expected header {' '.join(COLUMNS)!r}, got {header!r}")
        for lineno, row in enumerate(reader, 2):
            if len(row) != len(COLUMNS):
                raise UserError(f"{path}:{lineno}: {len(row)} columns, expected {len(COLUMNS)}")
            rec = dict(zip(COLUMNS, row))
            try:
                line, indent = int(rec["line"]), int(rec["indent"])
            except ValueError:
                raise UserError(f"{path}:{lineno}: line/indent are not integers") from None
            if line == 0 or not programs:
                programs.append({"probid": rec["probid"], "subid": rec["subid"],
                                 "workerid": rec["workerid"], "lines": []})
            programs[-1]["lines"].append((rec["text"], rec["code"], indent))
    return programs


def pseudocode(lines):
    """Annotated lines only, each prefixed by one `~` per indent level, joined by ` $ `."""
    return f" {LINE_SEP} ".join(" ".join([INDENT] * ind + [text.strip()])
                                 for text, _, ind in lines if text.strip())


def to_example(prog):
    lines = prog["lines"]
    return {"src": pseudocode(lines), "tgt": tokenize_lines([(ind, code) for _, code, ind in lines]),
            "code": "".join("  " * ind + code + "\n" for _, code, ind in lines),
            "probid": prog["probid"], "subid": prog["subid"], "workerid": prog["workerid"]}


def resolve_dir(data_dir=None):
    """(directory, official?) following the fallback rule in the module docstring."""
    d = data_dir or DEFAULT_DIR
    if os.path.exists(os.path.join(d, OFFICIAL["train"])):
        return d, True
    for cand in (d, SHARED_DIR):
        if os.path.exists(os.path.join(cand, FALLBACK["train"])):
            return cand, False
    raise UserError(f"{d}: no SPoC data (need {OFFICIAL['train']} or {FALLBACK['train']}); "
                    f"also looked in {SHARED_DIR}")


def load_spoc(data_dir=None, splits=("train", "valid", "testp", "testw"), max_train_chars=MAX_TRAIN_CHARS):
    """Return {"splits": {name: [example]}, "dir", "official", "note"}.

    Each example: src (pseudocode), tgt (tokenized code), code (gold code text), probid, subid,
    workerid. Training programs with tokenized code over `max_train_chars` characters are dropped."""
    d, official = resolve_dir(data_dir)
    files = {**(OFFICIAL if official else FALLBACK), **TESTS}
    if official:
        note = f"SPoC official split from {display_path(d)}"
    else:
        note = (f"SPoC train split unavailable: training on spoc-train-eval (as train) and validating "
                f"on spoc-train-test (as valid), from {display_path(d)}")
    out = {}
    for name in splits:
        if name not in files:
            raise UserError(f"unknown SPoC split {name!r} (have {', '.join(files)})")
        examples = [to_example(p) for p in read_tsv_programs(os.path.join(d, files[name]))]
        if name == "train" and max_train_chars:
            kept = [ex for ex in examples if len(ex["tgt"]) <= max_train_chars]
            log.info("SPoC %s: dropped %d of %d programs over %d characters", name,
                     len(examples) - len(kept), len(examples), max_train_chars)
            examples = kept
        out[name] = examples
    return {"splits": out, "dir": d, "official": official, "note": note}


def _drop_newline(s):
    return s[1:] if s.startswith("\n") else s


def parse_testcases(text):
    """[(input, output)] from a SPoC testcases file (CRLF normalized to LF)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tests = []
    for block in text.split("###ENDOUTPUT###"):
        if not block.strip():
            continue
        if "###ENDINPUT###" not in block:
            raise ValueError("a test case without ###ENDINPUT###")
        inp, out = block.split("###ENDINPUT###", 1)
        # each marker ends its line: drop exactly that newline (an output may be a blank line)
        tests.append((_drop_newline(inp) if tests else inp, _drop_newline(out)))
    return tests


@functools.lru_cache(maxsize=None)
def load_testcases(data_dir, probid, which="all"):
    """Test cases of one problem: which = all (public + hidden) / public / hidden."""
    suffix = {"all": "", "public": "_public", "hidden": "_hidden"}[which]
    path = os.path.join(data_dir, "testcases", probid, f"{probid}_testcases{suffix}.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(parse_testcases(f.read()))
    except FileNotFoundError:
        raise UserError(f"{path}: missing test cases for problem {probid}") from None
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None


def tests_for(data_dir, examples, which="all"):
    """Per example, its problem's test cases as [(input, expected_output)] for evaluate_programs."""
    return [list(load_testcases(data_dir, ex["probid"], which)) for ex in examples]


def restore_braces(lines):
    """DrRepair's code lines lost the `{` that ends block-opening lines (only `main() {` kept it)
    and `} else {` became `else`, while the other closing `}` lines remain. Re-attach `{` to the
    opener each `}` or `else` closes (the nearest earlier pending line at the same indent) and
    `}` to such an `else`. Where the original had no braces, the added ones change nothing."""
    codes = [c for c, _ in lines]
    ind = [k for _, k in lines]
    need = set()
    close_else = set()
    pending = []
    for i, c in enumerate(codes):
        closes = c.startswith("}") or c.startswith("else")
        if closes:
            for j in range(len(pending) - 1, -1, -1):
                if ind[pending[j]] == ind[i]:
                    need.add(pending.pop(j))
                    if c.startswith("else"):
                        close_else.add(i)
                    break
        nxt_opens = i + 1 < len(codes) and (ind[i + 1] > ind[i] or (
            ind[i + 1] == ind[i] and codes[i + 1].startswith("else")))
        if nxt_opens and not c.endswith(("{", ";")):
            pending.append(i)
    out = []
    for i, (c, k) in enumerate(lines):
        if i in close_else:
            c = "} " + c
        if i in need and not c.endswith("{"):
            c = c + " {"
        out.append((c, k))
    return out


def _fix_drrepair_literals(code):
    """DrRepair pads literal contents with spaces: `" YES "` is "YES", `' \\n '` is '\\n',
    while `" "` and `' '` are a single space."""
    import re

    def fix(m):
        q, body = m.group(1), m.group(2)
        if body == " ":
            return q + " " + q
        if body.startswith(" ") and body.endswith(" ") and len(body) >= 2:
            body = body[1:-1]
        return q + body + q

    return re.sub(r"(\"|')((?:[^\"'\\]|\\.)*?)\1", fix, code)


def load_codeforces_extra(path=DRREPAIR_FILE, exclude_probids=()):
    """Tokenized gold programs of the DrRepair Codeforces file (extra unlabeled code), minus those
    whose problem is in `exclude_probids` (TestP/TestW problems)."""
    if not os.path.exists(path):
        raise UserError(f"{path}: missing DrRepair Codeforces file")
    exclude = set(exclude_probids)
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
                lines = [(_fix_drrepair_literals(x["code"]), int(x["indent"])) for x in rec["gold_code_lines"]]
                probid = rec["info"]["probid"]
            except (ValueError, KeyError, TypeError) as e:
                raise UserError(f"{path}:{lineno}: malformed record ({e})") from None
            if probid in exclude:
                continue
            lines = restore_braces(lines)
            out.append({"tgt": tokenize_lines([(k, c) for c, k in lines]), "probid": probid,
                        "subid": rec["info"].get("subid")})
    return out


def test_problem_ids(data_dir=None):
    d, _ = resolve_dir(data_dir)
    ids = set()
    for rel in TESTS.values():
        ids.update(p["probid"] for p in read_tsv_programs(os.path.join(d, rel)))
    return ids


def without_test_programs(examples, test_examples):
    """`examples` minus those whose code is identical to a test program's (SPoC holds a few: the
    same accepted code submitted for related problems or by several users). Returns (kept,
    number dropped); make-spoc applies it to every training, validation and unlabeled set."""
    test_code = {e["tgt"] for e in test_examples}
    kept = [e for e in examples if e["tgt"] not in test_code]
    return kept, len(examples) - len(kept)
