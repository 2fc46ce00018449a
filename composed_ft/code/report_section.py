"""The code experiments' section of results/REPORT.md (SansType, SPoC): the main accuracy table, the
paper's claims beside our measured differences -- each with its confidence interval, exact McNemar
test and the smallest difference the test set can resolve --, and figures. Read from run
directories only; scripts/make_report.py assembles the sections.

Power before claims: a claim row says whether our test set and seeds could have detected the
paper's effect at all. The paper reports relative gains (abstract: +3% / +6% relative in
distribution, +4% / +25% out of it, on its two code datasets); at our reference accuracy that is
an absolute difference, which is compared with the smallest difference resolvable here (80% power,
two-sided 5% level, from the per-program standard error)."""
import json
import math
import os
from collections import defaultdict

from composed_ft.code.report import ORDER, ROW_KINDS, SPLIT_PAIRS, denoiser_per_seed, method_label
from composed_ft.core import tables
from composed_ft.core.errors import UserError
from composed_ft.core.figures import pyplot, save_fig
from composed_ft.core.io import display_paths
from composed_ft.core.runs import read_jsonl
from composed_ft.core.tables import by_seed, ci_cell, md_table, mean_std_cell, rel_link

# the paper's relative gains of Composed over standard fine-tuning on its two code datasets (abstract)
PAPER_REL = {"id": (0.03, 0.06), "ood": (0.04, 0.25)}
COMPOSED, PRETRAINED = "Composed (from Pretrained) Π(f(x))", "Pretrained"
WRITTEN = "Composed as written (from Pretrained) Π(f(x))"  # the paper's equation (runs before issue 36 ran it)
CONTINUED = "Pretrained, continued"  # the control: CE only, Composed's updates, schedule, batches and selection


# ---------------------------------------------------------------- which runs, which rows

def table_runs(runs):
    """The predictor runs of the summary table: the main comparison, backtranslation, and Composed from
    Direct (only the composed runs of ablation-init: the runners compose from the main Direct)."""
    preds = [r for r in runs if "eval" in r["results"] and r["config"].get("stage") != "denoise"]
    tag = lambda r: r["config"].get("tag")  # noqa: E731
    return [r for r in preds
            if tag(r) in ("main", "bt") or (tag(r) == "ablation-init" and r["config"]["stage"] == "compose")]


def code_rows(preds):
    """(row name, row kind, runs) in table order: `X` and `X + Π` (post hoc), or for Composed `X f(x)`
    (the base predictor) and `X Π(f(x))` (the composed predictor); and the gated rows."""
    groups = defaultdict(list)
    for r in preds:
        groups[method_label(r)].append(r)
    for label in sorted(groups, key=lambda k: (ORDER.index(k) if k in ORDER else 99, k)):
        composed = label.startswith("Composed")
        for kind, composed_label, plain_label in ROW_KINDS:
            suffix = " " + composed_label if composed else ("" if kind == "base" else " " + plain_label)
            yield label + suffix, kind, groups[label]


def splits_of(exp, preds):
    """The (ID, OOD) split pairs every run of this table was evaluated on (at least one run)."""
    have = {s for r in preds for s in r["results"]["eval"]}
    return [pair for pair in SPLIT_PAIRS[exp] if pair[0][0] in have and pair[1][0] in have]


def code_values(preds, splits):
    """{row name: {split: {seed: accuracy %}}} in table order (where recorded)."""
    out = {}
    for name, kind, runs in code_rows(preds):
        row = {}
        for split, _ in splits:
            have = [r for r in runs if kind in r["results"]["eval"].get(split, {})]
            row[split] = by_seed(have, lambda r, s=split, k=kind: 100 * r["results"]["eval"][s][k]["accuracy"])
        if any(row.values()):
            out[name] = row
    return out


def code_examples(preds, splits):
    """{row name: {split: {seed: [correct per program]}}} from the runs' per-program records
    (eval_<split>.jsonl, or the .gz of the archive); runs without records are left out."""
    from composed_ft.code.error_analysis import read_records
    from composed_ft.code.judge import gated_pick
    cache, out = {}, {}
    for name, kind, runs in code_rows(preds):
        for split, _ in splits:
            for r in runs:
                key = (r["path"], split)
                if key not in cache:
                    try:
                        cache[key] = read_records(r["path"], split)
                    except UserError:
                        cache[key] = None
                recs = cache[key]
                need = ("base",) if kind == "base" else ("base", "denoised")
                if not recs or not all(k in x for x in recs for k in need):
                    continue
                pick = gated_pick(recs) if kind == "gated" else [x[kind] for x in recs]
                out.setdefault(name, {}).setdefault(split, {})[r["config"]["seed"]] = \
                    [q["outcome"] == "correct" for q in pick]
    return out


# ---------------------------------------------------------------- claims

def seed_paired_ci(new, ref):
    """95% t interval of the per-seed difference of two {seed: accuracy %} (None below 2 seeds):
    the seeds' own variation (initialization, data order, and Π when it is trained per seed)."""
    d = [new[s] - ref[s] for s in new if s in ref]
    if len(d) < 2:
        return None
    m, h = sum(d) / len(d), tables.ci95(d)
    return m - h, m + h


def claim_row(comparison, paper, new_name, ref_name, split, vals, examples, paper_rel=None, judged=True):
    """One row: ref → new accuracy, difference with its per-program 95% CI and the seeds' CI, exact
    McNemar p, the smallest resolvable difference, the paper's effect at our reference accuracy.
    judged=False: a measurement the paper makes no claim about (its "agrees" cell is "—")."""
    get = lambda name: examples.get(name, {}).get(split, {})  # noqa: E731
    t = tables.paired_programs(get(new_name), get(ref_name))
    if t is None:
        return [comparison, paper, "missing runs", "—", "—", "—", "n/a"], None
    pts = lambda x: 100 * x  # noqa: E731
    lo, hi = t["ci"]
    text = (f"{pts(t['ref']):.1f} → {pts(t['new']):.1f} ({pts(t['diff']):+.1f} pts, 95% CI [{pts(lo):+.1f}, "
            f"{pts(hi):+.1f}]")
    sci = seed_paired_ci(vals.get(new_name, {}).get(split, {}), vals.get(ref_name, {}).get(split, {}))
    if sci:
        text += f"; over seeds [{sci[0]:+.1f}, {sci[1]:+.1f}]"
    text += f"; {t['n']} programs × {len(t['seeds'])} seed{'s' if len(t['seeds']) > 1 else ''})"
    mcn = f"{t['p_mcnemar']:.2g} ({t['c']} / {t['b']})"
    mde = f"{pts(t['mde']):.1f} pts"
    if paper_rel:
        eff = [r * pts(t["ref"]) for r in paper_rel]
        can = [e >= pts(t["mde"]) for e in eff]
        power = (" / ".join(f"{e:+.1f}" for e in eff) + " pts: "
                 + ("resolvable" if all(can) else "not resolvable" if not any(can) else "only the larger resolvable"))
    else:
        power = "—"
    resolved = lo > 0 or hi < 0
    verdict = _verdict(t["diff"], resolved) if judged else "—"
    return [comparison, paper, text, mcn, mde, power, verdict], t


def code_claims(exp, vals, pairs, examples):
    """Claim rows over every (ID, OOD) split pair; the header is CLAIMS_HEADER."""
    rows = []
    for (id_split, id_label), (ood_split, ood_label) in pairs:
        gains = {}
        # the paper's row (the authors' objective); runs made before it existed ran the equation as written
        composed = COMPOSED if COMPOSED in vals or WRITTEN not in vals else WRITTEN
        for key, split, label in (("id", id_split, id_label), ("ood", ood_split, ood_label)):
            row, t = claim_row(f"{label}: {composed.replace(' (from Pretrained)', '')} vs Pretrained (standard "
                               f"fine-tuning)", f"Composed > Pretrained (abstract: {100 * PAPER_REL[key][0]:+.0f}% / "
                               f"{100 * PAPER_REL[key][1]:+.0f}% relative)", composed, PRETRAINED, split, vals,
                               examples, PAPER_REL[key])
            rows.append(row)
            gains[key] = t
        rows.append(_ood_vs_id_row(gains, id_label, ood_label))
        if CONTINUED in vals:  # what the gain is made of: Composed − Pretrained = extra fine-tuning + composition
            for split, label in ((id_split, id_label), (ood_split, ood_label)):
                rows.append(claim_row(f"{label}: Composed Π(f(x)) vs Pretrained, continued (CE only, the same "
                                      f"updates and selection): what the composition adds", "not in the paper",
                                      COMPOSED, CONTINUED, split, vals, examples, judged=False)[0])
                rows.append(claim_row(f"{label}: Pretrained, continued vs Pretrained: what the extra fine-tuning "
                                      f"adds", "not in the paper", CONTINUED, PRETRAINED, split, vals, examples,
                                      judged=False)[0])
        for split, label in ((id_split, id_label), (ood_split, ood_label)):
            rows.append(claim_row(f"{label}: Pretrained + Π (post hoc) vs Pretrained", "Pretrained + Π > Pretrained",
                                  PRETRAINED + " + Π", PRETRAINED, split, vals, examples)[0])
        if exp == "sanstype":
            for split, label in ((id_split, id_label), (ood_split, ood_label)):
                rows.append(claim_row(f"{label}: Pretrained vs Direct", "Pretrained > Direct", PRETRAINED, "Direct",
                                      split, vals, examples)[0])
    return rows


def heldout_draw_rows(pairs, examples, name=COMPOSED):
    """A model trained on the released draw, scored on a fresh draw of the same generator: does it score there
    as on the released split, within the noise? Two independent samples of programs (not paired): the
    difference of the two accuracies (pooled over the seeds both have), its 95% normal interval from the two
    binomial standard errors, and the smallest difference it resolves. One row per (released, generated)
    split of the same kind, ID and OOD."""
    if len(pairs) < 2:
        return []
    rows = []
    for (rel, rel_label), (gen, gen_label) in zip(pairs[0], pairs[1]):
        a, b = examples.get(name, {}).get(rel, {}), examples.get(name, {}).get(gen, {})
        seeds = sorted(set(a) & set(b))
        title = f"Held-out draw: {name} on {gen_label} vs {rel_label}"
        if not seeds:
            rows.append([title, "the same accuracy", "missing runs", "—", "—", "—", "n/a"])
            continue
        xs, ys = [v for s in seeds for v in a[s]], [v for s in seeds for v in b[s]]
        pa, pb = sum(xs) / len(xs), sum(ys) / len(ys)
        se = math.sqrt(pa * (1 - pa) / len(xs) + pb * (1 - pb) / len(ys))
        d = pb - pa
        lo, hi = d - tables.Z95 * se, d + tables.Z95 * se
        text = (f"{100 * pa:.1f} ({len(xs)} programs) → {100 * pb:.1f} ({len(ys)}) ({100 * d:+.1f} pts, 95% CI "
                f"[{100 * lo:+.1f}, {100 * hi:+.1f}]; {len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
        verdict = "yes: within the noise" if lo <= 0 <= hi else "no: the draws differ"
        rows.append([title, "the same accuracy (not a claim of the paper: a check of the benchmark)", text, "—",
                     f"{100 * (tables.Z95 + tables.Z80) * se:.1f} pts", "—", verdict])
    return rows


def _ood_vs_id_row(gains, id_label, ood_label):
    """Is the relative gain of Composed over Pretrained larger OOD than ID? The two relative gains come
    from different programs, so their difference has the two standard errors in quadrature."""
    name = f"Gain of Composed over Pretrained, {ood_label} vs {id_label} (relative)"
    paper = "larger out of distribution"
    g_id, g_ood = gains.get("id"), gains.get("ood")
    if g_id is None or g_ood is None:
        return [name, paper, "missing runs", "—", "—", "—", "n/a"]
    if g_id["ref"] == 0 or g_ood["ref"] == 0:
        return [name, paper, "not defined: a reference accuracy of 0", "—", "—", "—", "n/a"]
    r_id, r_ood = g_id["diff"] / g_id["ref"], g_ood["diff"] / g_ood["ref"]
    se = math.hypot(g_id["se"] / g_id["ref"], g_ood["se"] / g_ood["ref"])
    d = r_ood - r_id
    lo, hi = d - tables.Z95 * se, d + tables.Z95 * se
    text = (f"relative gain OOD {100 * r_ood:+.1f}% vs ID {100 * r_id:+.1f}% (difference {100 * d:+.1f} points of "
            f"relative gain, 95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}])")
    resolved = lo > 0 or hi < 0
    verdict = _verdict(d, resolved)
    return [name, paper, text, "—", f"{100 * (tables.Z95 + tables.Z80) * se:.1f} points of relative gain", "—",
            verdict]


def _verdict(diff, resolved):
    """Does our difference agree with the paper's (a positive one)? Only a resolved one says yes or no."""
    if resolved:
        return "yes" if diff > 0 else "no: resolved, the opposite sign"
    return tables.unresolved_verdict(diff > 0)


CLAIMS_NOTE = ("Each row compares two methods on the same programs: the difference in accuracy with its 95% CI over "
               "programs (per-program differences averaged over the seeds both have; with two or more seeds, the CI "
               "over seeds too), the exact McNemar test on the (seed, program) pairs (gained / lost), the smallest "
               "difference this test set and these seeds resolve (80% power, 5% level), and whether the paper's "
               "relative effect, at our reference accuracy, is that large. \"agrees\": yes or no only where the CI "
               "excludes 0.\n")
CLAIMS_HEADER = ["comparison", "paper", "ours: reference → new (difference, 95% CI)", "McNemar p (gained / lost)",
                 "smallest resolvable difference", "paper's effect at our accuracy", "agrees"]


# ---------------------------------------------------------------- the section

def code_section(exp, runs, root, out, figdir, title, name=None):
    """(markdown parts, claim rows (CLAIMS_HEADER), figure parts) of one code experiment: `exp` is its data
    set's kind (sanstype, spoc: its splits and claims), `name` (default exp) names its figures."""
    figname = name or exp
    preds = table_runs(runs)
    text = spoc_notes(runs, root) if exp == "spoc" else []
    if not preds:
        return text + ["No finished predictor runs (tags main, bt, ablation-init) yet.\n"], [], []
    pairs = splits_of(exp, preds)
    splits = [s for pair in pairs for s in pair]
    vals = code_values(preds, splits)
    n_eval = {label: sorted({r["results"]["eval"][s]["n"] for r in preds if s in r["results"]["eval"]})
              for s, label in splits}
    header = ["method"]
    for _, label in splits:
        header += [f"{label} % (mean ± std)", f"{label} 95% CI"]
    rows = []
    for name, row in vals.items():
        cells = [name]
        for split, _ in splits:
            cells += [mean_std_cell(list(row[split].values())), ci_cell(list(row[split].values()))]
        seeds = sorted({s for split, _ in splits for s in row[split]})
        rows.append(cells + [" ".join(map(str, seeds))])
    per_seed_pi = denoiser_per_seed(preds)
    text += ["### Accuracy (% of programs that compile and pass their tests)\n",
             "Programs per split: " + ", ".join(f"{k} {', '.join(map(str, v)) or '?'}" for k, v in n_eval.items())
             + ". `+ Π`: the frozen denoiser applied at test time to the model's output; for Composed, "
             "f(x) is the base predictor alone and Π(f(x)) the composed predictor. `gated`: Π's output only where "
             "f's program fails to compile (the compiler as the gate), from the same judgements. "
             + ("The denoiser Π is trained per seed, so the ± includes its variation. " if per_seed_pi else
                "One denoiser Π is shared by every seed: the ± covers predictor seeds only. ")
             + "95% CI: Student's t over seeds.\n",
             md_table(header + ["seeds"], rows)]
    examples = code_examples(preds, splits)
    claims = code_claims(exp, vals, pairs, examples) + heldout_draw_rows(pairs, examples)
    dst = os.path.join(figdir, f"{figname}_accuracy.png")
    plot_accuracy_bars(vals, splits, title, dst)
    figures = ["### Figures\n", f"Accuracy per method (error bars: std over seeds):\n\n"
                                 f"![{figname} accuracy]({rel_link(dst, out)})\n"]
    curves = os.path.join(figdir, f"{figname}_val_curves.png")
    if plot_code_curves(preds, curves):
        figures.append("Learning curves: validation NLL per target token of f (left) and, for Composed, the "
                       "selection metric NLL_Π(y | ŷ) with ŷ = f's greedy output (right); one line per seed:\n\n"
                       f"![{figname} learning curves]({rel_link(curves, out)})\n")
    return text, claims, figures


def spoc_notes(runs, root):
    """Which data mapping the SPoC runs used, and the accuracy of the gold programs (the ceiling)."""
    notes = sorted({r["results"].get("note") or r["results"].get("data_note") or "" for r in runs} - {""})
    text = [f"Data: {display_paths(n)}.\n" for n in notes]
    path = os.path.join(root, "gold_ceiling", "spoc_summary.json")
    if os.path.exists(path):
        try:
            with open(path) as fh:
                g = json.load(fh)
            t = g["table"][g["chosen_std"]]
            text.append(f"Gold ceiling (gold programs through the same judge, -std={g['chosen_std']}): "
                        f"TestW {100 * t['testw']['accuracy']:.1f}%, TestP {100 * t['testp']['accuracy']:.1f}%.\n")
        except (OSError, ValueError, KeyError, TypeError) as e:
            text.append(f"Gold ceiling: {path} unreadable ({e!r}).\n")
    else:
        text.append("Gold ceiling: not measured in this run directory.\n")
    return text


# ---------------------------------------------------------------- figures

def plot_code_curves(preds, path):
    """Validation curves of the predictor runs (from metrics.jsonl); False when no run logged any."""
    plt = pyplot()
    fig, (ax, ax_pi) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    colors, labelled, drawn = {}, set(), False
    for r in sorted(preds, key=lambda r: (method_label(r), r["config"]["seed"])):
        label = method_label(r)
        color = colors.setdefault(label, f"C{len(colors)}")
        rows = [m for m in read_jsonl(os.path.join(r["path"], "metrics.jsonl")) if "epoch" in m]
        for a, key in ((ax, "val_nll"), (ax_pi, "val_pi_nll")):
            pts = [(m["epoch"], m[key]) for m in rows if m.get(key) is not None]
            if pts:
                a.plot(*zip(*pts), color=color, alpha=0.8, lw=1.2,
                       label=label if (label, key) not in labelled else None)
                labelled.add((label, key))
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    for a, ylabel in ((ax, "validation NLL of f (per token)"), (ax_pi, "validation NLL_Π(y | f's output)")):
        a.set_xlabel("epoch")
        a.set_ylabel(ylabel)
        a.set_yscale("log")
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    fig.tight_layout()
    save_fig(fig, path)
    return True


def plot_accuracy_bars(vals, splits, title, path):
    import numpy as np
    plt = pyplot()
    names = list(vals)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 1.5), 3.8))
    w = 0.8 / len(splits)
    x = np.arange(len(names))
    for i, (split, label) in enumerate(splits):
        ms = [tables.mean_std(list(vals[n][split].values())) for n in names]
        means = [m[0] if m[2] else 0.0 for m in ms]
        stds = [m[1] if m[2] > 1 else 0.0 for m in ms]
        ax.bar(x + (i - (len(splits) - 1) / 2) * w, means, w, yerr=stds, capsize=2, color=f"C{i}", label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_fig(fig, path)
