"""Build results/REPORT.md and its figures from run directories alone: nothing in it is typed by hand.

    python scripts/make_report.py [--runs runs] [--preset cpu] [--preset imggen=cpu-300ep] [--out results/REPORT.md]

For each experiment (imggen, sanstype, spoc) it reads runs/<experiment>/<preset>/ and writes:
  1. the main table: mean ± std and a 95% confidence interval over seeds,
  2. the paper's claims beside our measured gains, with whether they agree,
  3. figures under <out dir>/figures/ (sample grids, learning curves, accuracy bars),
  4. provenance: machine, presets, seeds, package versions, git commits, wall time per stage.
An experiment without runs is skipped with one line. The per-experiment tables with every ablation
stay in results/imggen.md and results/sanstype.md (`python -m composed_ft.<experiment> table`).
"""
import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code.report import ROW_KINDS, method_label  # noqa: E402
from composed_ft.core import tables  # noqa: E402
from composed_ft.core.errors import UserError, cli_entry  # noqa: E402
from composed_ft.core.io import atomic_path, write_text  # noqa: E402
from composed_ft.core.machine import describe  # noqa: E402
from composed_ft.core.runs import read_jsonl  # noqa: E402

EXPERIMENTS = ["imggen", "sanstype", "spoc"]
TITLES = {"imggen": "Font image generation (imggen)", "sanstype": "SansType pseudocode-to-code (synthetic)",
          "spoc": "SPoC pseudocode-to-code (full programs)"}
# Evaluation splits of the code experiments: (key in results.json "eval", label). The first is in
# distribution, the second out of it (SPoC: TestW = unseen annotators, TestP = unseen problems).
SPLITS = {"sanstype": [("test", "ID test"), ("ood", "OOD test")],
          "spoc": [("testw", "TestW (ID)"), ("testp", "TestP (OOD)")]}
PACKAGES = ["torch", "transformers", "sentencepiece", "numpy", "matplotlib"]


# ---------------------------------------------------------------- numbers and markdown

def stats(values):
    """(mean, std, n, 95% CI half-width) of a list; the half-width is nan below two values."""
    m, s, n = tables.mean_std(values)
    return m, s, n, tables.ci95(values)


def mean_std_cell(values, digits):
    m, s, n, _ = stats(values)
    if n == 0:
        return "—"
    return f"{m:.{digits}f}" if n == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def ci_cell(values, digits):
    m, _, n, h = stats(values)
    if n < 2:
        return "— (1 seed)" if n == 1 else "—"
    return f"[{m - h:.{digits}f}, {m + h:.{digits}f}]"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def by_seed(runs, value):
    """{seed: value(run)}; two runs of one seed (should not happen) are averaged."""
    acc = defaultdict(list)
    for r in runs:
        acc[r["config"]["seed"]].append(value(r))
    return {s: sum(v) / len(v) for s, v in sorted(acc.items())}


def minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def rel_link(path, out):
    return os.path.relpath(path, os.path.dirname(os.path.abspath(out))).replace(os.sep, "/")


# ---------------------------------------------------------------- claims

def compare(new, ref, lower_is_better, digits, unit="", per_example=None):
    """Paired comparison of two {seed: value} dicts (new vs reference). The difference is taken per
    seed because both methods of one seed share data and initialization; its 95% CI says whether
    the sign is resolved by the seeds we have. With fewer than two seeds, `per_example` (new, ref:
    {seed: [correct per example]}) gives an exact McNemar test on the examples both were judged on.
    Returns (measured text, relative change, verdict, resolved: whether the seeds' CI or the
    McNemar test (p < 0.05) resolves the sign)."""
    if not new or not ref:
        return "missing runs", math.nan, "n/a", False
    mn, mr = stats(list(new.values()))[0], stats(list(ref.values()))[0]
    diff, rel = mn - mr, (mn - mr) / mr if mr else math.nan
    better = diff < 0 if lower_is_better else diff > 0
    paired = [new[s] - ref[s] for s in new if s in ref]
    _, _, n, h = stats(paired)
    rel_text = f"{100 * rel:+.1f}% rel." if mr else "no relative change from 0"
    text = f"{mr:.{digits}f} → {mn:.{digits}f} ({diff:+.{digits}f}{unit}, {rel_text}"
    if n >= 2:
        lo, hi = stats(paired)[0] - h, stats(paired)[0] + h
        text += f"; paired 95% CI [{lo:+.{digits}f}, {hi:+.{digits}f}]"
        resolved = lo > 0 or hi < 0
    else:
        resolved = None
    text += ")"
    verdict = "yes" if better else ("tie" if diff == 0 else "no")
    mc = _mcnemar(per_example, [s for s in new if s in ref]) if resolved is None else None
    if mc is not None:
        p, b, c = mc
        text = text[:-1] + f"; McNemar p = {p:.2g}: {c} programs right only with the new, {b} only with the reference)"
        verdict += f" (1 seed; {'within noise: ' if p >= 0.05 else ''}McNemar p = {p:.2g})"
        resolved = p < 0.05
    elif resolved is None:
        verdict += " (1 seed, no CI)" if paired else " (no seed in common, no CI)"
    elif not resolved:
        verdict += " (within noise: CI contains 0)"
    return text, rel, verdict, bool(resolved)


def _mcnemar(per_example, seeds):
    """(p, b, c) of the exact McNemar test on the first common seed with per-example records of the
    same length for both methods, else None."""
    if not per_example:
        return None
    new_ex, ref_ex = per_example
    for s in seeds:
        a, r = new_ex.get(s), ref_ex.get(s)
        if a is not None and r is not None and len(a) == len(r):
            b = sum(x and not y for x, y in zip(r, a))  # right only under the reference
            c = sum(y and not x for x, y in zip(r, a))  # right only under the new method
            return tables.mcnemar_p(b, c), b, c
    return None


def claims_section(claims):
    if not claims:
        return ["### The paper's claims beside our measurements\n", "No comparison possible yet (missing runs).\n"]
    return ["### The paper's claims beside our measurements\n",
            "`agrees` compares the direction of our seed means with the claim. The paired 95% CI is that of the "
            "per-seed difference (both methods of a seed share data and initialization); \"within noise\": our "
            "seeds do not resolve the sign. With one seed, the code experiments' comparisons are tested per "
            "program instead (exact McNemar test on the programs both methods were judged on; p ≥ 0.05: "
            "within noise).\n",
            md_table(["comparison", "paper", "ours: reference → composed/new", "agrees"], claims)]


# ---------------------------------------------------------------- imggen

# Rows of the imggen table: (label, model of the run (composed_ft.imggen.report.model_label), results key).
IMG_ROWS = [("Direct (authors') f(x)", "Direct (authors')", "test_mse_base"),
            ("Direct (authors') + Π (post hoc)", "Direct (authors')", "test_mse_denoised"),
            ("Direct f(x)", "Direct", "test_mse_base"), ("Direct + Π (post hoc)", "Direct", "test_mse_denoised"),
            ("Direct (strongest) f(x)", "Direct (strongest)", "test_mse_base"),
            ("Direct (strongest) + Π (post hoc)", "Direct (strongest)", "test_mse_denoised"),
            ("Composed base f(x)", "Composed", "test_mse_base"), ("Composed Π(f(x))", "Composed", "test_mse_denoised")]
IMG_MODELS = ["Direct (authors')", "Direct", "Direct (strongest)", "Composed"]  # composed_ft.imggen.report.MODELS


def imggen_section(runs, out, figdir):
    from composed_ft.imggen.report import model_label, norm, settings
    main = [r for r in runs if r["config"].get("stage") == "train" and r["config"].get("tag") == "main"]
    if not main:
        return ["No finished main runs (tag main) yet.\n"], [], []
    sizes = sorted({r["config"]["n_train"] for r in main})
    of = lambda n, model: [r for r in main if r["config"]["n_train"] == n and model_label(r) == model]  # noqa: E731
    val = lambda n, model, key: by_seed([r for r in of(n, model) if key in r["results"]],  # noqa: E731
                                        lambda r: r["results"][key])
    rows, mech = [], []
    for n in sizes:
        for label, model, key in IMG_ROWS:
            v = list(val(n, model, key).values())
            if v:
                rows.append([n, label, mean_std_cell(v, 4), ci_cell(v, 4), " ".join(map(str, val(n, model, key)))])
        for model in IMG_MODELS:
            if of(n, model):
                norms = by_seed([r for r in of(n, model) if norm(r) is not None], norm)
                cells = [mean_std_cell(list(norms.values()), 1)] + [
                    mean_std_cell(list(val(n, model, k).values()), 3) for k in ("test_spread_base", "test_spread_denoised")]
                mech.append([n, model, " / ".join(sorted({settings(r) for r in of(n, model)}))] + cells)
    n_test = sorted({r["results"].get("n_test") for r in main} - {None})
    truth = sorted({round(r["results"]["test_spread_truth"], 3) for r in main if "test_spread_truth" in r["results"]})
    text = ["### Test MSE (per pixel, pixels in [-1, 1]; lower is better)\n",
            f"Held-out (font, character) pairs: {', '.join(map(str, n_test)) or '?'}. Each model is selected by "
            "its validation MSE (Direct: f(x); Composed: Π(f(x))). Two Direct baselines: the authors' (BatchNorm eps "
            "0.8, no dropout, λ 0) and the strongest Direct we made at the same budget (imggen/README.md).\n",
            md_table(["labeled", "model", "test MSE mean ± std", "95% CI of the mean", "seeds"], rows),
            "### The mechanism: f's norm and how gray its output is\n",
            "‖f‖: norm of every non-bias parameter of f (the authors' L2 set). Spread: per-image pixel std of the "
            f"test outputs, averaged (ground truth: {', '.join(map(str, truth)) or '?'}); a gray, blurry base "
            "predictor has a small spread. Mean ± std over seeds.\n",
            md_table(["labeled", "model", "f's settings", "‖f‖", "spread of f(x)", "spread of Π(f(x))"], mech)]
    claims = []
    for n in sizes:
        comp = val(n, "Composed", "test_mse_denoised")
        directs = {m: val(n, m, "test_mse_base") for m in IMG_MODELS[:3] if val(n, m, "test_mse_base")}
        if not directs:
            continue
        better = min(directs, key=lambda m: stats(list(directs[m].values()))[0])
        for m in sorted(directs, key=lambda m: m != better):
            measured, _, verdict, _ = compare(comp, directs[m], lower_is_better=True, digits=4)
            tag = " (the better Direct: the claim)" if m == better and len(directs) > 1 else ""
            claims.append([f"{n} labeled: Composed Π(f(x)) vs {m} f(x){tag}, test MSE",
                           "Composed has lower test MSE than Direct", measured, verdict])
        ref = "Direct (authors')" if "Direct (authors')" in directs else better
        norms = lambda m: by_seed([r for r in of(n, m) if norm(r) is not None], norm)  # noqa: E731
        for new, old, what, digits in ((norms("Composed"), norms(ref), "‖f‖ (non-bias parameters)", 1),
                                       (val(n, "Composed", "test_spread_base"), val(n, ref, "test_spread_base"),
                                        "spread of f(x) on test (gray = small)", 3)):
            measured, _, verdict, _ = compare(new, old, lower_is_better=True, digits=digits)
            claims.append([f"{n} labeled: {what}, Composed base vs {ref}",
                           "the composed base predictor is simpler: lower norm, gray and blurry output",
                           measured, verdict])
    figures = imggen_figures(main, sizes, out, figdir)
    dst = os.path.join(figdir, "imggen_denoiser_curve.png")
    if plot_denoiser_curves([r for r in runs if r["config"].get("stage") == "denoise"], dst):
        figures.append("Denoisers: held-out MSE of Π against training time (updates x the run's median seconds per "
                       "update, one thread; the cpu preset's width and updates were chosen from this):\n\n"
                       f"![denoiser curves]({rel_link(dst, out)})\n")
    return text, claims, figures


def plot_denoiser_curves(denoisers, path):
    """Held-out MSE against minutes for every denoiser that logged curve points; False if none did."""
    from composed_ft.imggen.report import curves
    found = curves(denoisers)
    if not found:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (rate, pts) in sorted(found.items()):
        ax.plot([m for _, m, _ in pts], [v for _, _, v in pts], marker=".", label=f"{name} ({rate:.2f} s/update)")
    ax.set_xlabel("training minutes")
    ax.set_ylabel("held-out MSE of Π(perturbed)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_fig(fig, path)
    return True


def imggen_figures(main, sizes, out, figdir):
    """The paper's figure (fonts x characters: truth, Direct, Composed base, Composed Π∘f) assembled from
    the sample grids of the first seed at the largest labeled size; each run's grid; validation curves."""
    from composed_ft.imggen.plots import read_panels, stack_panels
    from composed_ft.imggen.report import model_label
    text = ["### Figures\n"]
    n = sizes[-1]
    at_n = [r for r in main if r["config"]["n_train"] == n]
    seed = min(r["config"]["seed"] for r in at_n)
    src = {model_label(r): os.path.join(r["path"], "samples.png") for r in at_n if r["config"]["seed"] == seed}
    src = {m: p for m, p in src.items() if os.path.exists(p)}
    panels = {m: read_panels(p) for m, p in src.items()}
    grid = []
    if "Composed" in panels and {"truth", "base", "denoised"} <= set(panels["Composed"]):
        grid.append(("ground truth", panels["Composed"]["truth"][1]))
        for m in IMG_MODELS[:3]:
            if "base" in panels.get(m, {}):
                grid.append((f"{m}: f(x)", panels[m]["base"][1]))
        grid += [("Composed: base predictor f(x)", panels["Composed"]["base"][1]),
                 ("Composed: Pi(f(x))", panels["Composed"]["denoised"][1])]
    if grid:
        dst = os.path.join(figdir, "imggen_grid.png")
        stack_panels(dst, grid)
        text.append(f"The paper's figure: test (font, character) pairs, {n} labeled, seed {seed}; rows of each "
                    "block are fonts, columns characters. From the top: ground truth, "
                    + ", ".join(t for t, _ in grid[1:]) + ".\n\n"
                    f"![font samples]({rel_link(dst, out)})\n")
    for method in ("direct", "composed"):
        model = "Composed" if method == "composed" else next((m for m in IMG_MODELS[:3] if m in src), "Direct")
        if model in src:
            dst = os.path.join(figdir, f"imggen_samples_{method}.png")
            with atomic_path(dst) as tmp:
                shutil.copyfile(src[model], tmp)
            text.append(f"{model}, {n} labeled, seed {seed} (panels: ground truth, base f(x), "
                        f"Π(f(x))):\n\n![{method} samples]({rel_link(dst, out)})\n")
        else:
            text.append(f"{model} samples: no samples.png in the seed-{seed} run at {n} labeled.\n")
    dst = os.path.join(figdir, "imggen_val_curves.png")
    plot_val_curves(main, sizes, dst)
    text.append("Validation MSE per epoch (Direct: f(x); Composed: Π(f(x))) and, where logged, ‖f‖ per epoch; "
                f"one line per seed:\n\n![validation curves]({rel_link(dst, out)})\n")
    return text


def plot_val_curves(main, sizes, path):
    from composed_ft.imggen.report import model_label
    plt = pyplot()
    with_norm = any("weight_norm" in m for r in main[:1] for m in read_jsonl(os.path.join(r["path"], "metrics.jsonl")))
    fig, axes = plt.subplots(2 if with_norm else 1, len(sizes), figsize=(4.2 * len(sizes), 6.4 if with_norm else 3.4),
                             squeeze=False)
    # Each model's own selection metric: what its checkpoint was chosen by.
    styles = {"Direct (authors')": ("val_mse_base", "tab:blue"), "Direct": ("val_mse_base", "tab:purple"),
              "Direct (strongest)": ("val_mse_base", "tab:green"), "Composed": ("val_mse_denoised", "tab:orange")}
    for col, n in enumerate(sizes):
        for model, (key, color) in styles.items():
            first = True
            for r in sorted((r for r in main if r["config"]["n_train"] == n and model_label(r) == model),
                            key=lambda r: r["config"]["seed"]):
                rows = [m for m in read_jsonl(os.path.join(r["path"], "metrics.jsonl")) if "epoch" in m]
                pts = [(m["epoch"], m.get(key, m.get("val_mse"))) for m in rows if key in m or "val_mse" in m]
                label = model if first else None
                if pts:
                    axes[0][col].plot(*zip(*pts), color=color, alpha=0.8, lw=1.2, label=label)
                    first = False
                norms = [(m["epoch"], m["weight_norm"]) for m in rows if "weight_norm" in m]
                if with_norm and norms:
                    axes[1][col].plot(*zip(*norms), color=color, alpha=0.8, lw=1.2, label=label)
        axes[0][col].set_title(f"{n} labeled")
        axes[0][col].set_ylabel("validation MSE")
        if with_norm:
            axes[1][col].set_ylabel("‖f‖ (non-bias parameters)")
        for ax in axes[:, col]:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    save_fig(fig, path)


# ---------------------------------------------------------------- code experiments (SansType, SPoC)

ORDER = ["Direct", "Pretrained", "Backtranslation", "Composed (from Pretrained)", "Composed (from Backtranslation)",
         "Composed (from Direct)"]


def table_runs(runs):
    """The predictor runs of the summary table: the main comparison, backtranslation, and Composed from
    Direct (only the composed runs of ablation-init: the runners compose from the main Direct, and run
    trees from before that change also hold a copy of Direct there, which would duplicate the main one)."""
    preds = [r for r in runs if "eval" in r["results"] and r["config"].get("stage") != "denoise"]
    tag = lambda r: r["config"].get("tag")  # noqa: E731
    return [r for r in preds
            if tag(r) in ("main", "bt") or (tag(r) == "ablation-init" and r["config"]["stage"] == "compose")]


def code_rows(preds):
    """(row name, row kind, runs) in table order. Non-composed methods give `X` and `X + Π` (post hoc);
    composed ones `X f(x)` (the base predictor) and `X Π(f(x))` (the composed predictor); and the gated
    rows (Π only where f's program fails to compile)."""
    groups = defaultdict(list)
    for r in preds:
        groups[method_label(r)].append(r)
    for label in sorted(groups, key=lambda k: (ORDER.index(k) if k in ORDER else 99, k)):
        composed = label.startswith("Composed")
        for kind, composed_label, plain_label in ROW_KINDS:
            suffix = " " + composed_label if composed else ("" if kind == "base" else " " + plain_label)
            yield label + suffix, kind, groups[label]


def code_values(preds, splits):
    """{row name: {split: {seed: accuracy %}}} in table order (rows of code_rows, where recorded)."""
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
                    continue  # no records, or records of another shape: no per-program test
                pick = gated_pick(recs) if kind == "gated" else [x[kind] for x in recs]
                out.setdefault(name, {}).setdefault(split, {})[r["config"]["seed"]] = \
                    [q["outcome"] == "correct" for q in pick]
    return out


def code_claims(exp, vals, splits, examples=None):
    (id_split, id_label), (ood_split, ood_label) = splits
    get = lambda name, split: vals.get(name, {}).get(split, {})  # noqa: E731
    ex = lambda name, split: (examples or {}).get(name, {}).get(split, {})  # noqa: E731
    comp, pre = "Composed (from Pretrained) Π(f(x))", "Pretrained"
    abstract = {id_split: "abstract: +3% / +6% relative ID on the two code datasets",
                ood_split: "abstract: +4% / +25% relative OOD on the two code datasets"}

    def gain(new, ref, split):  # rows `new` vs `ref` on one split, per seed (and per program with one seed)
        return compare(get(new, split), get(ref, split), lower_is_better=False, digits=1, unit=" pts",
                       per_example=(ex(new, split), ex(ref, split)))
    claims, rel, resolved, missing = [], {}, {}, False
    for split, label in splits:
        measured, rel[split], verdict, resolved[split] = gain(comp, pre, split)
        missing |= measured == "missing runs"
        claims.append([f"{label}: Composed Π(f(x)) vs Pretrained (standard fine-tuning), accuracy %",
                       f"Composed > Pretrained ({abstract[split]})", measured, verdict])
    if missing:
        measured, verdict = "missing runs", "n/a"
    elif math.isnan(rel[id_split]) or math.isnan(rel[ood_split]):  # a reference accuracy of 0
        measured, verdict = "not defined: no relative gain from a reference accuracy of 0", "n/a"
    else:
        measured = f"relative gain {ood_label} {100 * rel[ood_split]:+.1f}% vs {id_label} {100 * rel[id_split]:+.1f}%"
        verdict = "yes" if rel[ood_split] > rel[id_split] else "no"
        # a ratio of unresolved differences is not evidence: 0.1% -> 0.3% OOD is "+300%" from 2 programs
        if not all(resolved.values()):
            verdict += " (within noise: the gains it compares are not resolved)"
    claims.append(["Gain of Composed over Pretrained, OOD vs ID", "larger out of distribution", measured, verdict])
    if exp == "sanstype":  # the SansType table's ordering: Composed > Pretrained > Direct
        for split, label in splits:
            measured, _, verdict, _ = gain(pre, "Direct", split)
            claims.append([f"{label}: Pretrained vs Direct, accuracy %", "Pretrained > Direct", measured, verdict])
    for split, label in splits:  # the paper's first observation: fine-tuning destroys some output structure
        measured, _, verdict, _ = gain(pre + " + Π", pre, split)
        claims.append([f"{label}: Pretrained + Π (post hoc) vs Pretrained, accuracy %",
                       "Pretrained + Π > Pretrained", measured, verdict])
    return claims


def code_section(exp, runs, root, out, figdir):
    splits = SPLITS[exp]
    preds = table_runs(runs)
    text = []
    if exp == "spoc":
        text += spoc_notes(runs, root)
    if not preds:
        return text + ["No finished predictor runs (tags main, bt, ablation-init) yet.\n"], [], []
    vals = code_values(preds, splits)
    n_eval = {label: sorted({r["results"]["eval"][s]["n"] for r in preds if s in r["results"]["eval"]})
              for s, label in splits}
    header = ["method"]
    for _, label in splits:
        header += [f"{label} accuracy % (mean ± std)", f"{label} 95% CI"]
    rows = []
    for name, row in vals.items():
        cells = [name]
        for split, _ in splits:
            cells += [mean_std_cell(list(row[split].values()), 1), ci_cell(list(row[split].values()), 1)]
        seeds = sorted({s for split, _ in splits for s in row[split]})
        rows.append(cells + [" ".join(map(str, seeds))])
    text += ["### Accuracy (% of programs that compile and pass their tests)\n",
             "Examples per split: " + ", ".join(f"{k} {', '.join(map(str, v)) or '?'}" for k, v in n_eval.items())
             + ". `+ Π`: the frozen denoiser applied at test time to the model's output; for Composed, "
             "f(x) is the base predictor alone and Π(f(x)) the composed predictor. `gated`: Π's output only where "
             "f's program fails to compile (the compiler as the gate), from the same judgements.\n",
             md_table(header + ["seeds"], rows)]
    dst = os.path.join(figdir, f"{exp}_accuracy.png")
    plot_accuracy_bars(vals, splits, TITLES[exp], dst)
    figures = ["### Figures\n", f"Accuracy per method (error bars: std over seeds):\n\n"
                                 f"![{exp} accuracy]({rel_link(dst, out)})\n"]
    curves = os.path.join(figdir, f"{exp}_val_curves.png")
    if plot_code_curves(preds, curves):
        figures.append("Learning curves: validation NLL per target token of f (left) and, for Composed, the "
                       "selection metric NLL_Π(y | ŷ) with ŷ = f's greedy output (right); one line per seed:\n\n"
                       f"![{exp} learning curves]({rel_link(curves, out)})\n")
    return text, code_claims(exp, vals, splits, code_examples(preds, splits)), figures


def spoc_notes(runs, root):
    """Which data mapping the SPoC runs used, and the accuracy of the gold programs (the ceiling)."""
    notes = sorted({r["results"].get("note") or r["results"].get("data_note") or "" for r in runs} - {""})
    text = [f"Data: {n}.\n" for n in notes]
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
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 1.5), 3.8))
    x, w = np.arange(len(names)), 0.38
    for i, ((split, label), color) in enumerate(zip(splits, ("tab:blue", "tab:orange"))):
        ms = [stats(list(vals[n][split].values())) for n in names]
        means = [m[0] if m[2] else 0.0 for m in ms]
        stds = [m[1] if m[2] > 1 else 0.0 for m in ms]
        ax.bar(x + (i - 0.5) * w, means, w, yerr=stds, capsize=3, color=color, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_fig(fig, path)


# ---------------------------------------------------------------- figures

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    return plt


def save_fig(fig, path):
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


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
        text.append(f"- {exp}: `{root}`, {len(runs)} finished runs, preset {', '.join(presets)}, predictor seeds "
                    f"{' '.join(map(str, seeds)) or '—'}, commits {', '.join(commits)}")
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
    path = os.path.join(r["path"], "metrics.jsonl")
    ep = [float(m.get("epoch_s") or 0) for m in read_jsonl(path) if "epoch" in m] if os.path.exists(path) else []
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
            skipped.append(f"- {TITLES[exp]}: no finished runs under `{root}`; skipped.")
    if not found:
        raise UserError(f"{runs_root}: no finished runs for any experiment "
                        f"({', '.join(os.path.join(runs_root, e, presets.get(e, presets['*'])) for e in EXPERIMENTS)})")
    argv = " ".join(f"--preset {k}={v}" if k != "*" else f"--preset {v}" for k, v in presets.items())
    body = []
    for exp, (root, runs) in found.items():
        tables_md, claims, figures = (imggen_section(runs, out, figdir) if exp == "imggen"
                                      else code_section(exp, runs, root, out, figdir))
        body += [f"## {TITLES[exp]}\n", f"Runs: `{root}`.\n"] + tables_md + claims_section(claims) + figures
    head = ["# Composed fine-tuning: reproduction report\n",
            f"Generated by `python scripts/make_report.py --runs {runs_root} {argv} --out {out}` on "
            f"{time.strftime('%Y-%m-%d %H:%M')} from {sum(len(r) for _, r in found.values())} run directories; "
            "every number and figure below is read from them. Mean ± std over seeds; 95% CI of the mean "
            "uses Student's t. Each experiment: its table, the paper's claims beside our numbers, figures; "
            "provenance at the end.\n"]
    if skipped:
        head += ["\n".join(skipped) + "\n"]
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
