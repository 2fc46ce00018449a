"""How faithful is our SansType generator? Statistics of a draw, and two-sample tests against the
authors' released draw (../shared/data/sanstype-1000a).

Compared per distribution (ID: train + val + test of the release; OOD: its ood split):
- categorical (two-sample chi-square on the counts): pseudocode templates, code-line forms
  (literals and names abstracted away), inputs per program, printed variables per program;
- lengths (two-sample Kolmogorov-Smirnov): body lines, characters of pseudocode and code, BPE pieces
  of pseudocode and code (the vocabulary the experiment trains on the released train split).
And the denoiser's corruption against the statistics SANSTYPE.md reports for 20,000 pairs of the
authors' generator: share of clean pairs and of 0/1/2/3 differing lines (chi-square against counts
rebuilt from the reported percentages), share of corrupted lines that are deleted prints (reported
only to two digits: we say whether our 95% interval meets the rounding interval).
"""
import collections
import re

import numpy as np

from composed_ft.code import sanstype_authors as sa

_ABSTRACT = [(re.compile(r"var_\d"), "V"), (re.compile(r'"str_\d"'), "S"), (re.compile(r"\btrue\b|\bfalse\b"), "B"),
             (re.compile(r"(?<![\w])-?\d+\b"), "K")]
# reported by SANSTYPE.md §6 for train 20000 of the authors' generator
REFERENCE_CORRUPTION = {"n": 20000, "differing_lines": {0: 13.7, 1: 37.1, 2: 34.3, 3: 14.9}, "deleted_print_pct": 27}


def abstract(text):
    for pat, rep in _ABSTRACT:
        text = pat.sub(rep, text)
    return text


def pseudo_pieces(src):
    return [p.strip() for p in src.strip().strip("$").split(" $ ") if p.strip()]


def describe_programs(exs, tok=None):
    """Per-program statistics and pooled category counts of examples {src, tgt, inp}."""
    out = {"templates": collections.Counter(), "code_forms": collections.Counter(), "lines": [], "src_chars": [],
           "tgt_chars": [], "inputs": [], "prints": []}
    for ex in exs:
        body = sa.body_lines(ex["tgt"])
        if body is None:
            raise ValueError(f"not in the authors' format: {ex['tgt'][:80]!r}")
        out["templates"].update(abstract(p) for p in pseudo_pieces(ex["src"]))
        out["code_forms"].update(abstract(b) for b in body)
        out["lines"].append(len(body))
        out["src_chars"].append(len(ex["src"]))
        out["tgt_chars"].append(len(ex["tgt"]))
        out["inputs"].append(len(ex["inp"].split()) if ex.get("inp") else 0)
        out["prints"].append(sum(b.startswith("cout") for b in body))
    if tok is not None:
        out["src_pieces"] = [len(x) for x in tok.encode_many([e["src"] for e in exs])]
        out["tgt_pieces"] = [len(x) for x in tok.encode_many([e["tgt"] for e in exs])]
    return out


def chi2_two_sample(a, b, min_expected=5):
    """Chi-square test of homogeneity of two count dicts; categories whose expected count is below
    `min_expected` in either sample are pooled into one. Returns (statistic, dof, p, n_categories)."""
    from scipy.stats import chi2_contingency
    keys = sorted(set(a) | set(b))
    na, nb = sum(a.values()), sum(b.values())
    big, small = [], []
    for k in keys:
        tot = a.get(k, 0) + b.get(k, 0)
        (big if min(tot * na, tot * nb) / (na + nb) >= min_expected else small).append(k)
    rows = [[a.get(k, 0) for k in big], [b.get(k, 0) for k in big]]
    if small:
        rows[0].append(sum(a.get(k, 0) for k in small))
        rows[1].append(sum(b.get(k, 0) for k in small))
    rows = np.array(rows)
    rows = rows[:, rows.sum(0) > 0]
    if rows.shape[1] < 2:
        return 0.0, 0, 1.0, rows.shape[1]
    stat, p, dof, _ = chi2_contingency(rows)
    return float(stat), int(dof), float(p), rows.shape[1]


def ks_two_sample(a, b):
    from scipy.stats import ks_2samp
    r = ks_2samp(a, b)
    return float(r.statistic), float(r.pvalue)


def compare(released, ours):
    """Rows {stat, kind, released, ours, test, value, p} for two describe_programs() results."""
    rows = []
    for key, name in (("templates", "pseudocode templates"), ("code_forms", "code-line forms")):
        stat, dof, p, k = chi2_two_sample(released[key], ours[key])
        rows.append({"stat": name, "released": f"{len(released[key])} kinds", "ours": f"{len(ours[key])} kinds",
                     "test": f"chi2({dof}) over {k} cells", "value": stat, "p": p})
    for key, name in (("inputs", "stdin values per program"), ("prints", "printed variables per program")):
        stat, dof, p, k = chi2_two_sample(collections.Counter(released[key]), collections.Counter(ours[key]))
        rows.append({"stat": name, "released": _mean(released[key]), "ours": _mean(ours[key]),
                     "test": f"chi2({dof})", "value": stat, "p": p})
    for key, name in (("lines", "body lines"), ("src_chars", "pseudocode characters"),
                      ("tgt_chars", "code characters"), ("src_pieces", "pseudocode BPE pieces"),
                      ("tgt_pieces", "code BPE pieces")):
        if key not in released or key not in ours:
            continue
        d, p = ks_two_sample(released[key], ours[key])
        rows.append({"stat": name, "released": _mean(released[key]), "ours": _mean(ours[key]), "test": "KS",
                     "value": d, "p": p})
    return rows


def _mean(xs):
    return f"mean {np.mean(xs):.2f}, max {max(xs)}"


def corruption_stats(clean_programs, corrupt_fn, rng):
    """Corrupt each program once; the share of pairs with 0/1/2/3 differing body lines and the share
    of changed lines that are deleted prints."""
    differing = collections.Counter()
    changed = deleted = 0
    for tgt in clean_programs:
        a, b = sa.body_lines(tgt), sa.body_lines(corrupt_fn(tgt, rng))
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        differing[len(diff)] += 1
        changed += len(diff)
        deleted += sum(b[i] == "" for i in diff)
    return {"n": len(clean_programs), "differing_lines": dict(differing), "changed_lines": changed,
            "deleted_prints": deleted}


def compare_corruption(stats, ref=REFERENCE_CORRUPTION):
    """Rows comparing corruption_stats() with the reference of SANSTYPE.md."""
    n = stats["n"]
    ref_counts = {k: round(v / 100 * ref["n"]) for k, v in ref["differing_lines"].items()}
    ours = {k: stats["differing_lines"].get(k, 0) for k in ref_counts}
    stat, dof, p, _ = chi2_two_sample(ref_counts, ours)
    rows = [{"stat": "differing lines 0/1/2/3 (%)",
             "released": "/".join(f"{v:.1f}" for v in ref["differing_lines"].values()),
             "ours": "/".join(f"{100 * ours[k] / n:.1f}" for k in ref_counts), "test": f"chi2({dof}) vs SANSTYPE.md",
             "value": stat, "p": p}]
    share = stats["deleted_prints"] / max(stats["changed_lines"], 1)
    se = (share * (1 - share) / max(stats["changed_lines"], 1)) ** 0.5
    lo, hi = 100 * (share - 1.96 * se), 100 * (share + 1.96 * se)
    r = ref["deleted_print_pct"]
    rows.append({"stat": "changed lines that are deleted prints (%)", "released": f"{r} (rounded)",
                 "ours": f"{100 * share:.1f} [{lo:.1f}, {hi:.1f}]", "test": "95% CI meets [r-0.5, r+0.5)",
                 "value": None, "p": None, "ok": lo < r + 0.5 and hi >= r - 0.5})
    return rows
