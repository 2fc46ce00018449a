"""Result tables built from run directories: markdown for people, TSV for programs.

A cell is either a string (a label) or a list of numbers (one per seed), shown as mean ± std."""
import glob
import json
import math
import os

from .io import write_text
from .runs import VOLATILE_KEYS, read_json


def collect(pattern):
    """Every finished run under a glob pattern: [{"path", "config", "results"}], sorted by path."""
    out = []
    for res in sorted(glob.glob(os.path.join(pattern, "results.json"))):
        d = os.path.dirname(res)
        cfg = read_json(os.path.join(d, "config.json"))
        out.append({"path": d, "config": cfg["config"], "git_commit": cfg.get("git_commit"),
                    "results": read_json(res)})
    return out


# What may differ between the seeds of one row without making them different experiments: the seed itself,
# the keys a resumption may change (runs.VOLATILE_KEYS), the table's grouping label, and names of the
# argument parser's own (older runs' `command`).
NOT_SETTINGS = frozenset({"seed", "tag", "command", *VOLATILE_KEYS})


def mixed_settings(runs, ignore=(), upgrade=None):
    """{key: [its distinct values, by seed]} of the settings on which the runs grouped into one table row
    differ, other than NOT_SETTINGS and `ignore` (e.g. paths of per-seed runs). `upgrade(config)` reads an
    older run's config as today's code does (the values it was made with for settings it lacks); without
    it, a key only some runs hold is not compared. Empty when the row's seeds share every setting."""
    ordered = sorted(runs, key=lambda r: r["config"].get("seed") or 0)
    configs = [json.loads(json.dumps(upgrade(r["config"]) if upgrade else r["config"])) for r in ordered]
    if len(configs) < 2:
        return {}
    keys = set.intersection(*(set(c) for c in configs)) - NOT_SETTINGS - set(ignore)
    out = {}
    for k in sorted(keys):
        distinct = {}
        for c in configs:
            distinct.setdefault(json.dumps(c[k], sort_keys=True), c[k])
        if len(distinct) > 1:
            out[k] = list(distinct.values())
    return out


def mixed_note(runs, ignore=(), upgrade=None):
    """A row's warning when its seeds mix settings (appended to its label cell): ' ⚠ seeds mix settings:
    key a / b; ...', or '' -- a mean over seeds made with different settings is not one experiment's."""
    mixed = mixed_settings(runs, ignore, upgrade)
    if not mixed:
        return ""
    show = lambda v: v if isinstance(v, str) else json.dumps(v)  # noqa: E731
    return " ⚠ seeds mix settings: " + "; ".join(f"{k} {' / '.join(map(show, v))}" for k, v in mixed.items())


def mean_std(values):
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, s, n


# Two-sided 95% Student-t quantiles for n-1 degrees of freedom (n = 2..10); normal beyond.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci95(values):
    """Half-width of the 95% confidence interval of the mean (nan for a single value)."""
    m, s, n = mean_std(values)
    if n < 2:
        return math.nan
    return _T95.get(n - 1, 1.96) * s / math.sqrt(n)


def fmt(values, digits=4, scale=1.0, suffix=""):
    if isinstance(values, str):
        return values
    if not values:
        return "—"
    m, s, n = mean_std([v * scale for v in values])
    if n == 1:
        return f"{m:.{digits}f}{suffix}"
    return f"{m:.{digits}f} ± {s:.{digits}f}{suffix}"


def render(header, rows, digits=4, scale=1.0, suffix=""):
    """(markdown, tsv) of a table. TSV has mean, std and n columns for every numeric column."""
    md = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        md.append("| " + " | ".join(fmt(c, digits, scale, suffix) for c in r) + " |")
    numeric = [i for i in range(len(header)) if any(not isinstance(r[i], str) for r in rows)]
    th = []
    for i, h in enumerate(header):
        th += [f"{h} mean", f"{h} std", f"{h} n"] if i in numeric else [h]
    tsv = ["\t".join(th)]
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            if i in numeric:
                m, s, n = mean_std([] if isinstance(c, str) else c)
                cells += [f"{m:.6g}", f"{s:.6g}", str(n)]
            else:
                cells.append(c)
        tsv.append("\t".join(cells))
    return "\n".join(md) + "\n", "\n".join(tsv) + "\n"


def write(md_path, sections, tsv_path=None):
    """sections: list of markdown strings and (title, header, rows, kwargs) tables. The TSV gets
    every table, each preceded by a '# title' line."""
    md, tsv = [], []
    for s in sections:
        if isinstance(s, str):
            md.append(s.rstrip() + "\n")
            continue
        title, header, rows, kw = s
        m, t = render(header, rows, **kw)
        md.append((f"### {title}\n\n" if title else "") + m)
        tsv.append(f"# {title}\n" + t)
    write_text(md_path, "\n".join(md))
    if tsv_path:
        write_text(tsv_path, "\n".join(tsv))


def mcnemar_p(b, c):
    """Exact two-sided McNemar test: b examples right only under the reference, c only under the new
    method (the two are judged on the same examples). The p-value of a difference at least this
    lopsided if each discordant example were a fair coin: 2 x P(Binomial(b + c, 1/2) <= min(b, c)),
    capped at 1. With one seed this is the only honest noise statement a single table can make."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


# 80% power at a two-sided 5% level: a true difference of (Z95 + Z80) standard errors is detected
Z95, Z80 = 1.959964, 0.841621


def paired_programs(new, ref):
    """Two methods judged on the same programs: new, ref = {seed: [correct per program]}. Per program
    the difference is averaged over the seeds both have (the programs are the sample; the seeds' own
    variation enters through the per-program averages). Returns None without a common seed, else
    {n, seeds, new, ref (accuracies), diff, ci: (lo, hi), se, b, c, p_mcnemar, mde}:
      diff, ci   mean difference in accuracy (fractions) and its 95% normal interval over programs;
      b, c       (seed, program) pairs right only under the reference / only under the new method,
      p_mcnemar  the exact McNemar test on those pairs (pooled over seeds);
      mde        the smallest true difference this test set and these seeds detect with 80% power at
                 the 5% level, (z_.975 + z_.8) x the standard error of the difference."""
    seeds = sorted(s for s in new if s in ref and len(new[s]) == len(ref[s]))
    if not seeds:
        return None
    n = len(new[seeds[0]])
    seeds = [s for s in seeds if len(new[s]) == n]
    if n == 0:
        return None
    d = [sum(int(new[s][i]) - int(ref[s][i]) for s in seeds) / len(seeds) for i in range(n)]
    m = sum(d) / n
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n) if n > 1 else math.nan
    b = sum(r and not a for s in seeds for a, r in zip(new[s], ref[s]))
    c = sum(a and not r for s in seeds for a, r in zip(new[s], ref[s]))
    acc = lambda xs: sum(sum(map(int, xs[s])) for s in seeds) / (n * len(seeds))  # noqa: E731
    return {"n": n, "seeds": seeds, "new": acc(new), "ref": acc(ref), "diff": m, "se": se,
            "ci": (m - Z95 * se, m + Z95 * se), "b": b, "c": c, "p_mcnemar": mcnemar_p(b, c),
            "mde": (Z95 + Z80) * se}


# ---------------------------------------------------------------- cells and claims of the report sections

def md_table(header, rows):
    """A markdown table of ready-made cells."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def by_seed(runs, value):
    """{seed: value(run)}; two runs of one seed (should not happen) are averaged."""
    acc = {}
    for r in runs:
        acc.setdefault(r["config"]["seed"], []).append(value(r))
    return {s: sum(v) / len(v) for s, v in sorted(acc.items())}


def mean_std_cell(values, digits=1):
    m, s, n = mean_std(values)
    if n == 0:
        return "—"
    return f"{m:.{digits}f}" if n == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def ci_cell(values, digits=1):
    m, _, n = mean_std(values)
    if n < 2:
        return "— (1 seed)" if n == 1 else "—"
    h = ci95(values)
    return f"[{m - h:.{digits}f}, {m + h:.{digits}f}]"


def rel_link(path, out):
    """`path` as a markdown link from the file `out`."""
    return os.path.relpath(path, os.path.dirname(os.path.abspath(out))).replace(os.sep, "/")


def unresolved_verdict(same_sign):
    """A claim's verdict when the CI of our difference contains 0: neither yes nor no, only the sign."""
    return f"not resolved (CI contains 0; {'same' if same_sign else 'opposite'} sign)"


def seed_paired_claim(new, ref, lower_is_better, digits, unit=""):
    """A claim's measurement from two {seed: value} dicts (new vs reference), paired by seed: both
    methods of one seed share data and initialization, so the 95% CI of the per-seed difference says
    whether the seeds resolve its sign. Returns (measured text, relative change, verdict)."""
    if not new or not ref:
        return "missing runs", math.nan, "n/a"
    mn, mr = mean_std(list(new.values()))[0], mean_std(list(ref.values()))[0]
    diff, rel = mn - mr, (mn - mr) / mr if mr else math.nan
    paired = [new[s] - ref[s] for s in new if s in ref]
    rel_text = f"{100 * rel:+.1f}% rel." if mr else "no relative change from 0"
    text = f"{mr:.{digits}f} → {mn:.{digits}f} ({diff:+.{digits}f}{unit}, {rel_text}"
    verdict = "yes" if (diff < 0 if lower_is_better else diff > 0) else ("tie" if diff == 0 else "no")
    if len(paired) >= 2:
        m, h = mean_std(paired)[0], ci95(paired)
        text += f"; paired 95% CI [{m - h:+.{digits}f}, {m + h:+.{digits}f}])"
        if not (m - h > 0 or m + h < 0) and verdict != "tie":   # yes/no only when resolved
            verdict = unresolved_verdict(verdict == "yes")
    else:
        text += ")"
        verdict += " (1 seed, no CI)" if paired else " (no seed in common, no CI)"
    return text, rel, verdict
