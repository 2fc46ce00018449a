"""What a model gets wrong: its failed outputs classified by their first difference from the gold.

`python -m composed_ft.code errors --run-dir R [--split test] [--kind base]` reads a predictor's
`eval_<split>.jsonl` (written by every evaluation) and prints, per outcome (compile error, wrong
output, ...), where each failed program first departs from the gold program:

- `line missing` / `line added`: the output equals the gold with one line deleted / inserted;
- otherwise, at the first line that differs, the first token that differs:
  `type` (a declaration type: int / bool / string / ...), `string literal`, `number or bool`,
  `variable` (an identifier), `structure` (anything else: an operator, a keyword, a bracket);
- `length limit`: the output ran to the generation limit.

Counts of this kind tell whether accuracy is lost to type inference, to copying literals, or to
structure; they are computed from the records, so they cost nothing and can be rerun on any run."""
import json
import os
import re
from collections import Counter

from composed_ft.code.judge import gated_pick
from composed_ft.core.errors import UserError
from composed_ft.core.records import lines as stored_lines

TYPES = {"int", "bool", "string", "char", "double", "float", "long", "void", "auto", "unsigned", "short"}
CATEGORIES = ("type", "string literal", "number or bool", "variable", "structure", "line missing", "line added",
              "length limit")
_NUMBER = re.compile(r"^-?\d[\w.]*$")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")


def _lines(code):
    return [ln.strip() for ln in code.split(" $ ")]


def token_category(gold_tok, pred_tok):
    """The kind of the first differing token (either side: one may be missing)."""
    toks = [t for t in (gold_tok, pred_tok) if t]
    if any(t in TYPES for t in toks):
        return "type"
    if any(t.startswith(("\"", "'")) for t in toks):
        return "string literal"
    if any(_NUMBER.match(t) or t in ("true", "false") for t in toks):
        return "number or bool"
    if any(_IDENT.match(t) and t not in ("cin", "cout", "endl", "if", "else", "for", "while", "return")
           for t in toks):
        return "variable"
    return "structure"


def _first_line_apart(p, g):
    """Index of the first line where the line lists p and g differ (the shorter length if one is a
    prefix of the other)."""
    return next((k for k, (a, b) in enumerate(zip(p, g)) if a != b), min(len(p), len(g)))


def first_difference(pred, gold):
    """Category of where `pred` (tokenized code, lines joined by ' $ ') first departs from `gold`;
    None when they are equal."""
    p, g = _lines(pred), _lines(gold)
    if p == g:
        return None
    i = _first_line_apart(p, g)
    if len(p) == len(g) - 1 and p[i:] == g[i + 1:]:
        return "line missing"
    if len(p) == len(g) + 1 and p[i + 1:] == g[i:]:
        return "line added"
    if i >= len(p) or i >= len(g):  # one is a prefix of the other (more than one line apart)
        return "line missing" if len(p) < len(g) else "line added"
    pt, gt = p[i].split(), g[i].split()
    j = next((k for k, (a, b) in enumerate(zip(pt, gt)) if a != b), min(len(pt), len(gt)))
    return token_category(gt[j] if j < len(gt) else None, pt[j] if j < len(pt) else None)


def type_detail(pred, gold):
    """For a `type` difference: what the gold line is — a declaration without initializer (`T v ;`,
    its type known only from later uses: global type inference), one with an initializer, or no
    declaration at all (an assignment that f wrongly declared) — and whether f's line declares."""
    p, g = _lines(pred), _lines(gold)
    i = _first_line_apart(p, g)
    gl = [t for t in (g[i] if i < len(g) else "").split() if t != "~"]
    pl = [t for t in (p[i] if i < len(p) else "").split() if t != "~"]
    if gl and gl[0] in TYPES:
        what = "declaration without initializer" if "=" not in gl else "declaration with initializer"
    else:
        what = "not a declaration"
    return what, "f declares" if pl and pl[0] in TYPES else "f does not declare"


def classify(records, kind="base"):
    """{outcome: Counter(category)} over the failed records of one row kind (base / denoised)."""
    out = {}
    for r in records:
        row = r.get(kind)
        if not row or row["outcome"] == "correct":
            continue
        cat = "length limit" if row.get("hit_limit") else first_difference(row["pred"], r["gold"])
        out.setdefault(row["outcome"], Counter())[cat or "structure"] += 1
    return out


def read_records(run_dir, split):
    """The per-program records of a run: eval_<split>.jsonl, in whatever form it is kept (the archive,
    results/runs, packs them: core/records.py)."""
    path = os.path.join(run_dir, f"eval_{split}.jsonl")
    try:
        found = stored_lines(path)
        rows = None if found is None else [json.loads(line) for line in found if line.strip()]
    except (OSError, EOFError, ValueError) as e:  # a damaged file or pack, a line that is not JSON
        raise UserError(f"{path}: not JSON lines ({e})") from None
    if rows is None:
        raise UserError(f"{path}: no evaluation records (is {run_dir} a finished predictor run?)")
    return rows


def type_details(records, kind="base"):
    """Counter of type_detail over the failed records whose first difference is a `type`."""
    c = Counter()
    for r in records:
        row = r.get(kind)
        if row and row["outcome"] != "correct" and not row.get("hit_limit") \
                and first_difference(row["pred"], r["gold"]) == "type":
            c[type_detail(row["pred"], r["gold"])] += 1
    return c


def render(run_dir, split, kind, table, details=None):
    n_fail = sum(sum(c.values()) for c in table.values())
    head = ["outcome", "n"] + list(CATEGORIES)
    lines = [f"{run_dir} — {split}, {kind}: {n_fail} failed programs by where they first differ from the gold", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for outcome in sorted(table):
        c = table[outcome]
        lines.append("| " + " | ".join([outcome, str(sum(c.values()))] + [str(c.get(k, 0)) for k in CATEGORIES]) + " |")
    if details:
        lines += ["", "`type` differences: the gold line, and f's line", "", "| gold line | f's line | n |",
                  "|---|---|---|"]
        lines += [f"| {what} | {f_side} | {n} |" for (what, f_side), n in details.most_common()]
    return "\n".join(lines) + "\n"


def with_gated(records):
    """The records with a `gated` row: Π's output only where f's fails to compile (as in the tables)."""
    return [dict(r, gated=q) for r, q in zip(records, gated_pick(records))]


def add_args(p):
    p.add_argument("--run-dir", required=True, action="append", help="finished predictor run (repeatable)")
    p.add_argument("--split", default="test", help="evaluation split (test, ood, testw, testp)")
    p.add_argument("--kind", default="base", choices=["base", "denoised", "gated"],
                   help="which row: f's output, Π applied to it, or the gated row")


def run(args):
    for rd in args.run_dir:
        recs = read_records(rd, args.split)
        kind = args.kind
        if kind == "gated":
            recs = with_gated(recs)
        print(render(rd, args.split, kind, classify(recs, kind), type_details(recs, kind)))
    return 0


# ---------------------------------------------------------------- `compare`: two runs, program by program

def paired(ref_records, new_records, kind="base"):
    """(n, ref correct, new correct, b, c) over the programs both runs were judged on (matched by
    index): b programs right only under the reference, c only under the new run."""
    def correct(recs):
        if kind == "gated":
            recs = with_gated(recs)
        return {r["index"]: r[kind]["outcome"] == "correct" for r in recs if r.get(kind)}
    ref, new = correct(ref_records), correct(new_records)
    common = sorted(set(ref) & set(new))
    b = sum(ref[i] and not new[i] for i in common)
    c = sum(new[i] and not ref[i] for i in common)
    return len(common), sum(ref[i] for i in common), sum(new[i] for i in common), b, c


def add_args_compare(p):
    p.add_argument("--ref", required=True, help="reference run directory (finished, with eval records)")
    p.add_argument("--run-dir", required=True, action="append", help="run to compare with it (repeatable)")
    p.add_argument("--split", action="append", dest="splits", help="evaluation split (repeatable; default test)")
    p.add_argument("--kind", default="base", choices=["base", "denoised", "gated"])


def run_compare(args):
    from composed_ft.core.tables import mcnemar_p
    splits = args.splits or ["test"]
    print(f"reference: {args.ref} ({args.kind}); exact McNemar test on the programs both were judged on")
    print("| run | split | n | ref % | run % | gained | lost | p |")
    print("|---|---|---|---|---|---|---|---|")
    for rd in args.run_dir:
        for split in splits:
            n, r, k, b, c = paired(read_records(args.ref, split), read_records(rd, split), args.kind)
            if n == 0:
                raise UserError(f"{rd}: no {split} programs in common with {args.ref}")
            print(f"| {rd} | {split} | {n} | {100 * r / n:.1f} | {100 * k / n:.1f} | {c} | {b} "
                  f"| {mcnemar_p(b, c):.2g} |")
    return 0
