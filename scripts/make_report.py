"""Build results/REPORT.md and its figures from run directories alone: nothing in it is typed by hand.

    python scripts/make_report.py [--runs runs] [--preset cpu] [--preset imggen=cpu-300ep] [--out results/REPORT.md]

It opens with the verdict: one line per claim of the paper that the experiments test (the paper's claim,
our measurement, whether they agree: yes, no, unresolved, not measured) and the counts. For each
experiment (imggen, sanstype, sanstype-strict, spoc) it reads runs/<experiment>/<preset>/ and
assembles the section its domain writes (composed_ft/imggen/report_section.py,
composed_ft/code/report_section.py): the main table (mean ± std, 95% CI), the paper's claims beside our
measurements, figures under <out dir>/figures/; then provenance: machine, presets, seeds, package
versions, git commits, wall time per stage. An experiment without runs is skipped with one line. The
per-experiment tables with every ablation stay in results/imggen.md, results/sanstype.md, ...
(`python -m composed_ft.<experiment> table`).
"""
import argparse
import importlib.metadata
import os
import platform
import re
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code import report_section as code_report  # noqa: E402
from composed_ft.core import tables  # noqa: E402
from composed_ft.core.errors import UserError, cli_entry  # noqa: E402
from composed_ft.core.io import display_path, write_text  # noqa: E402
from composed_ft.core.machine import describe  # noqa: E402
from composed_ft.core.runs import read_jsonl  # noqa: E402
from composed_ft.core.tables import md_table  # noqa: E402
from composed_ft.imggen import report_section as imggen_report  # noqa: E402

# The experiments in report order: their runs are runs/<name>/<preset>/; each has a title and the module
# that writes its section: (markdown parts, claim rows, figure parts) from its runs, with the claim rows'
# header and what they mean.
EXPERIMENTS = ["imggen", "sanstype", "sanstype-strict", "spoc"]
TITLES = {"imggen": "Font image generation (imggen)", "sanstype": "SansType pseudocode-to-code (the paper's data)",
          "sanstype-strict": "SansType, strict variant (beyond the paper)",
          "spoc": "SPoC pseudocode-to-code (full programs)"}
PACKAGES = ["torch", "transformers", "sentencepiece", "numpy", "matplotlib"]


def minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


# ---------------------------------------------------------------- the sections

def section(exp, root, runs, out, figdir):
    """(markdown parts, claims header, claims note, claim rows, figure parts) of one experiment, written
    by its domain's report_section module."""
    if exp == "imggen":
        text, claims, figures = imggen_report.imggen_section(runs, root, out, figdir, TITLES[exp])
        return text, imggen_report.CLAIMS_HEADER, imggen_report.CLAIMS_NOTE, claims, figures
    kind = "spoc" if exp == "spoc" else "sanstype"  # the strict variant has SansType's splits and claims
    text, claims, figures = code_report.code_section(kind, runs, root, out, figdir, TITLES[exp], name=exp)
    return text, code_report.CLAIMS_HEADER, code_report.CLAIMS_NOTE, claims, figures


def claims_section(header, note, claims):
    title = "### The paper's claims beside our measurements\n"
    if not claims:
        return [title, "No comparison possible yet (missing runs).\n"]
    return [title, note, md_table(header, claims)]


# ---------------------------------------------------------------- the verdict

# Rows of the claims tables that check the benchmark rather than a claim of the paper (their `paper` cell):
# the held-out draw of SansType's generated test programs.
NOT_CLAIMS = ("the same accuracy", "not in the paper")  # the held-out-draw check; the controls
VERDICTS = ("yes", "no", "unresolved", "not measured")


def verdict_of(agrees):
    """A claim row's `agrees` cell as one of VERDICTS: yes / no only where the row resolves the sign (its CI
    excludes 0); unresolved where the CI contains 0, the difference is 0, or one seed gives no CI; not
    measured where runs are missing. The cell's first clause is the verdict (imggen adds the test pairs')."""
    head = agrees.split(";")[0].strip()
    if head == "n/a":
        return "not measured"
    if head.startswith(("not resolved", "tie")) or "no CI" in head:
        return "unresolved"
    if head.startswith("yes"):
        return "yes"
    if head.startswith("no"):
        return "no"
    return "unresolved"


def short_ours(cell):
    """Our measurement as reference → new (difference, its 95% CI): the cell's first clause, with the first
    95% CI the cell gives when that clause has none, without the rest."""
    head = cell.split(";")[0].rstrip()
    ci = re.search(r"(?:paired )?95% CI \[[^\]]*\]", cell)
    if ci and "CI [" not in head:
        head += "; " + ci.group(0)
    return head + ")" * (head.count("(") - head.count(")"))


def verdict_section(claims_by_exp):
    """The report's opening: one line per claim row of the experiments below (comparison, the paper's
    claim, ours, agrees) and the counts of each verdict per experiment."""
    rows, counts = [], {}
    for exp, claims in claims_by_exp.items():
        mine = [r for r in claims if not str(r[1]).startswith(NOT_CLAIMS)]
        for r in mine:
            rows.append([exp, r[0], r[1], short_ours(str(r[2])), verdict_of(str(r[-1]))])
        counts[exp] = [sum(1 for r in rows if r[0] == exp and r[-1] == v) for v in VERDICTS]
    if not rows:
        return []
    total = [sum(c[i] for c in counts.values()) for i in range(len(VERDICTS))]
    count_rows = [[exp, sum(c), *c] for exp, c in counts.items()] + [["**all**", sum(total), *total]]
    return ["## Verdict: the paper's claims against our measurements\n",
            "One line per claim row of the experiments' sections below, where each is shown with its test "
            "(the `agrees` column there says how it is decided). ours: reference → new (difference and its 95% "
            "CI where the row has one). agrees: yes or no only where the difference's 95% CI excludes 0; "
            "unresolved where it contains 0 (or one seed gives no CI); not measured where runs are missing. "
            f"{TITLES['sanstype-strict']} is this project's variant of SansType, not the paper's data. "
            "Checks of the benchmark itself (the held-out draw) and the controls the paper lacks (Pretrained, "
            "continued) are not claims and are left out: the experiments' sections show them.\n",
            md_table(["experiment", "claim", "paper", "ours", "agrees"], rows),
            md_table(["experiment", "claim rows", *VERDICTS], count_rows)]


# ---------------------------------------------------------------- provenance

def stage_of(exp, r):
    """The stage a run's wall time is charged to."""
    c, res = r["config"], r["results"]
    if c.get("stage") == "denoise":
        return "denoiser Π"
    if exp == "imggen":
        return c.get("method", "?")
    return res.get("method") or c.get("stage", "?")  # code: direct, reverse, pretrain, backtranslate, compose


def versions():
    out = [f"python {platform.python_version()}"]
    for p in PACKAGES:
        try:
            out.append(f"{p} {importlib.metadata.version(p)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{p} (not installed)")
    return ", ".join(out)


def short_commit(c):
    return (c or "unknown")[:12] + ("+dirty" if (c or "").endswith("+dirty") else "")


def provenance(found):
    """found: {experiment: (root, runs)}. Wall time and commits per (experiment, tag, stage)."""
    text = ["## Provenance\n", f"- Machine (generating this report): {describe()}",
            f"- Packages (environment generating this report; run directories do not record them): {versions()}"]
    for exp, (root, runs) in found.items():
        presets = sorted({str(r["config"].get("preset")) for r in runs})
        seeds = sorted({r["config"]["seed"] for r in runs if r["config"].get("stage") != "denoise"
                        and "seed" in r["config"]})
        commits = sorted({short_commit(r.get("git_commit")) for r in runs})
        text.append(f"- {exp}: `{display_path(root)}`, {len(runs)} finished runs, preset {', '.join(presets)}, "
                    f"predictor seeds {' '.join(map(str, seeds)) or '—'}, commits {', '.join(commits)}")
    groups = defaultdict(list)
    for exp, (_, runs) in found.items():
        for r in runs:
            groups[(exp, r["config"].get("tag") or "—", stage_of(exp, r))].append(r)
    walls = {r["path"]: run_wall_s(r) for _, runs in found.values() for r in runs}
    wall = lambda rs: sum(walls[r["path"]][0] for r in rs)  # noqa: E731
    resumed = sorted(os.path.relpath(r["path"], root) for root, runs in found.values() for r in runs
                     if walls[r["path"]][1])
    # In pipeline order: the denoiser first, then the main comparison, then the other tags.
    order = lambda key: (key[2] != "denoiser Π", key[1] != "main", key[1], key[2])  # noqa: E731
    rows = []
    for exp in found:
        keys = sorted((k for k in groups if k[0] == exp), key=order)
        rows += [[exp, tag, stage, len(groups[k]), minutes(wall(groups[k])),
                  ", ".join(sorted({short_commit(r.get("git_commit")) for r in groups[k]}))]
                 for k in keys for _, tag, stage in [k]]
        everything = [r for k in keys for r in groups[k]]
        rows.append([f"**{exp} total**", "", "", len(everything), minutes(wall(everything)), ""])
    every = [r for rs in groups.values() for r in rs]
    text += ["", "### Wall time (sum of `wall_s` in results.json)\n",
             md_table(["experiment", "tag", "stage", "runs", "wall time", "commits"], rows),
             f"Total: {minutes(wall(every))} over {len(every)} runs.\n"]
    if resumed:
        text.append("Resumed before the trainer recorded its training time, so their `wall_s` covers only "
                    "the last process; the epochs run by earlier processes are added from the epoch times in "
                    f"metrics.jsonl (validation excluded): {', '.join(resumed)}.\n")
    return text


def run_wall_s(r):
    """(seconds, patched): a run's wall time. Runs resumed before the trainer carried its training
    seconds in the checkpoint (no `train_s` in results.json) recorded only their last process in
    wall_s. That process ran the last epochs: the longest suffix of metrics.jsonl's epoch times that
    fits in wall_s is taken as its own, and only the epochs before it are added (patched is True when
    there are any). Adding every epoch would count the last process's epochs twice."""
    res = r["results"]
    w = float(res.get("wall_s") or 0)
    if "train_s" in res or "epochs" not in res:
        return w, False
    ep = [float(m.get("epoch_s") or 0) for m in read_jsonl(os.path.join(r["path"], "metrics.jsonl")) if "epoch" in m]
    tail, k = 0.0, 0
    for e in reversed(ep):
        if tail + e > w:
            break
        tail, k = tail + e, k + 1
    earlier = sum(ep[:len(ep) - k])
    return (w + earlier, True) if earlier > 0 else (w, False)


# ---------------------------------------------------------------- assembling the report

def collect(root):
    """Finished runs one and two levels below an experiment's preset directory (as the table CLIs do)."""
    if not os.path.isdir(root):
        return []
    return tables.collect(os.path.join(root, "*", "*")) + tables.collect(os.path.join(root, "*"))


def build(runs_root, presets, out):
    figdir = os.path.join(os.path.dirname(os.path.abspath(out)), "figures")
    found, skipped = {}, []
    for exp in EXPERIMENTS:
        root = os.path.join(runs_root, exp, presets.get(exp, presets["*"]))
        runs = collect(root)
        if runs:
            found[exp] = (root, runs)
        else:
            skipped.append(f"- {TITLES[exp]}: no finished runs under `{display_path(root)}`; skipped.")
    if not found:
        raise UserError(f"{runs_root}: no finished runs for any experiment "
                        f"({', '.join(os.path.join(runs_root, e, presets.get(e, presets['*'])) for e in EXPERIMENTS)})")
    argv = " ".join(f"--preset {k}={v}" if k != "*" else f"--preset {v}" for k, v in presets.items())
    body, claims_by_exp = [], {}
    for exp, (root, runs) in found.items():
        tables_md, header, note, claims, figures = section(exp, root, runs, out, figdir)
        body += [f"## {TITLES[exp]}\n", f"Runs: `{display_path(root)}`.\n"] + tables_md
        body += claims_section(header, note, claims) + figures
        claims_by_exp[exp] = claims
    head = ["# Composed fine-tuning: reproduction report\n",
            f"Generated by `python scripts/make_report.py --runs {display_path(runs_root)} {argv} "
            f"--out {display_path(out)}` on "
            f"{time.strftime('%Y-%m-%d %H:%M')} from {sum(len(r) for _, r in found.values())} run directories; "
            "every number and figure below is read from them. Mean ± std over seeds; 95% CI of the mean "
            "uses Student's t. Each experiment: its table, the paper's claims beside our numbers, figures; "
            "provenance at the end.\n"]
    if skipped:
        head += ["\n".join(skipped) + "\n"]
    head += verdict_section(claims_by_exp)
    write_text(out, "\n".join(head + body + provenance(found)))
    return out


def parse_presets(values):
    """['cpu', 'imggen=cpu-300ep'] -> {'*': 'cpu', 'imggen': 'cpu-300ep'}."""
    presets = {"*": "cpu"}
    for v in values or []:
        exp, sep, name = v.rpartition("=")
        if sep and exp not in EXPERIMENTS:
            raise UserError(f"--preset {v}: unknown experiment {exp!r} (one of {', '.join(EXPERIMENTS)})")
        presets[exp if sep else "*"] = name
    return presets


@cli_entry
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", help="root of the run directories (default: runs)")
    p.add_argument("--preset", action="append", metavar="[EXPERIMENT=]NAME",
                   help="preset directory under runs/<experiment>/ (default cpu); EXPERIMENT=NAME overrides it "
                        "for one experiment; repeatable")
    p.add_argument("--out", default="results/REPORT.md", help="report path; figures go to figures/ beside it")
    args = p.parse_args(argv)
    if not os.path.isdir(args.runs):
        raise UserError(f"{args.runs}: runs root not found (run runner.sh first, or pass --runs)")
    out = build(args.runs, parse_presets(args.preset), args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
