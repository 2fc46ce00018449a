"""The font experiment's section of results/REPORT.md: the test-MSE table with 95% CIs, f's norm and
output spread (the mechanism), the paper's claims beside our measurements (paired by seed), and the
figures (the paper's sample figure assembled from the runs' grids, validation curves, the denoisers'
held-out MSE against time). Read from run directories only; scripts/make_report.py assembles the
sections. (results/imggen.md, with every ablation, is report.py's.)"""
import os
import shutil

from ..core.figures import pyplot, save_fig
from ..core.io import atomic_path
from ..core.runs import read_jsonl
from ..core.tables import by_seed, ci_cell, md_table, mean_std, mean_std_cell, rel_link, seed_paired_claim
from .plots import read_panels, stack_panels
from .report import MODELS, curves, model_label, norm, pair_cell, pair_resolved, paired_pairs, settings

CLAIMS_HEADER = ["comparison", "paper", "ours: reference → composed/new", "agrees"]
CLAIMS_NOTE = ("`agrees` compares the direction of our seed means with the claim: yes or no only where the paired "
               "95% CI excludes 0, else \"not resolved\" with the sign. That CI is the per-seed difference's (both "
               "methods of a seed share data and initialization). Per test pair (test MSE rows): the two models' "
               "MSE difference on each (font, character) test pair, averaged over the seeds, with a 95% normal CI "
               "over the pairs — test-set sampling noise for these trained models, not retraining noise.\n")

# Rows of the test-MSE table: (label, model of the run (report.model_label), results key).
ROWS = [("Direct (authors') f(x)", "Direct (authors')", "test_mse_base"),
        ("Direct (authors') + Π (post hoc)", "Direct (authors')", "test_mse_denoised"),
        ("Direct f(x)", "Direct", "test_mse_base"), ("Direct + Π (post hoc)", "Direct", "test_mse_denoised"),
        ("Direct (strongest) f(x)", "Direct (strongest)", "test_mse_base"),
        ("Direct (strongest) + Π (post hoc)", "Direct (strongest)", "test_mse_denoised"),
        ("Composed base f(x)", "Composed", "test_mse_base"), ("Composed Π(f(x))", "Composed", "test_mse_denoised")]


def imggen_section(runs, root, out, figdir, title):
    """(markdown parts, claim rows (CLAIMS_HEADER), figure parts) of the font experiment's section."""
    main = [r for r in runs if r["config"].get("stage") == "train" and r["config"].get("tag") == "main"]
    if not main:
        return ["No finished main runs (tag main) yet.\n"], [], []
    sizes = sorted({r["config"]["n_train"] for r in main})
    of = lambda n, model: [r for r in main if r["config"]["n_train"] == n and model_label(r) == model]  # noqa: E731
    val = lambda n, model, key: by_seed([r for r in of(n, model) if key in r["results"]],  # noqa: E731
                                        lambda r: r["results"][key])
    rows, mech = [], []
    for n in sizes:
        for label, model, key in ROWS:
            v = list(val(n, model, key).values())
            if v:
                rows.append([n, label, mean_std_cell(v, 4), ci_cell(v, 4), " ".join(map(str, val(n, model, key)))])
        for model in MODELS:
            if of(n, model):
                norms = by_seed([r for r in of(n, model) if norm(r) is not None], norm)
                cells = [mean_std_cell(list(norms.values()), 1)] + [
                    mean_std_cell(list(val(n, model, k).values()), 3)
                    for k in ("test_spread_base", "test_spread_denoised")]
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
        directs = {m: val(n, m, "test_mse_base") for m in MODELS[:3] if val(n, m, "test_mse_base")}
        if not directs:
            continue
        better = min(directs, key=lambda m: mean_std(list(directs[m].values()))[0])
        for m in sorted(directs, key=lambda m: m != better):
            measured, _, verdict = seed_paired_claim(comp, directs[m], lower_is_better=True, digits=4)
            pp = paired_pairs([(r, "denoised") for r in of(n, "Composed")], [(r, "base") for r in of(n, m)])
            if pp:
                measured += (f"; per test pair {pair_cell(pp)} over {pp['n']} pairs × {len(pp['seeds'])} seed(s), "
                             f"detects ±{pp['mde']:.4f}")
                verdict += "; test pairs: " + ("CI excludes 0" if pair_resolved(pp) else "within noise")
            tag = " (the better Direct: the claim)" if m == better and len(directs) > 1 else ""
            claims.append([f"{n} labeled: Composed Π(f(x)) vs {m} f(x){tag}, test MSE",
                           "Composed has lower test MSE than Direct", measured, verdict])
        ref = "Direct (authors')" if "Direct (authors')" in directs else better
        norms = lambda m: by_seed([r for r in of(n, m) if norm(r) is not None], norm)  # noqa: E731
        for new, old, what, digits in ((norms("Composed"), norms(ref), "‖f‖ (non-bias parameters)", 1),
                                       (val(n, "Composed", "test_spread_base"), val(n, ref, "test_spread_base"),
                                        "spread of f(x) on test (gray = small)", 3)):
            measured, _, verdict = seed_paired_claim(new, old, lower_is_better=True, digits=digits)
            claims.append([f"{n} labeled: {what}, Composed base vs {ref}",
                           "the composed base predictor is simpler: lower norm, gray and blurry output",
                           measured, verdict])
    figures = _figures(main, sizes, out, figdir)
    dst = os.path.join(figdir, "imggen_denoiser_curve.png")
    if _plot_denoiser_curves([r for r in runs if r["config"].get("stage") == "denoise"], dst):
        figures.append("Denoisers: held-out MSE of Π against training time (updates x the run's median seconds per "
                       "update, one thread; the cpu preset's width and updates were chosen from this):\n\n"
                       f"![denoiser curves]({rel_link(dst, out)})\n")
    return text, claims, figures


def _plot_denoiser_curves(denoisers, path):
    """Held-out MSE against minutes for every denoiser that logged curve points; False if none did."""
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


def _figures(main, sizes, out, figdir):
    """The paper's figure (fonts x characters: truth, Direct, Composed base, Composed Π∘f) assembled from
    the sample grids of the first seed at the largest labeled size; each run's grid; validation curves."""
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
        for m in MODELS[:3]:
            if "base" in panels.get(m, {}):
                grid.append((f"{m}: f(x)", panels[m]["base"][1]))
        grid.append(("Composed: base predictor f(x)", panels["Composed"]["base"][1]))
        if "base_stretched" in panels["Composed"]:  # the gray output's shape, made visible
            grid.append(("Composed: base predictor f(x), each image stretched to the full range",
                         panels["Composed"]["base_stretched"][1]))
        grid.append(("Composed: Pi(f(x))", panels["Composed"]["denoised"][1]))
    if grid:
        dst = os.path.join(figdir, "imggen_grid.png")
        stack_panels(dst, grid)
        text.append(f"The paper's figure: test (font, character) pairs, {n} labeled, seed {seed}; rows of each "
                    "block are fonts, columns characters. From the top: ground truth, "
                    + ", ".join(t for t, _ in grid[1:]) + ".\n\n"
                    f"![font samples]({rel_link(dst, out)})\n")
    for method in ("direct", "composed"):
        model = "Composed" if method == "composed" else next((m for m in MODELS[:3] if m in src), "Direct")
        if model in src:
            dst = os.path.join(figdir, f"imggen_samples_{method}.png")
            with atomic_path(dst) as tmp:
                shutil.copyfile(src[model], tmp)
            text.append(f"{model}, {n} labeled, seed {seed} (panels: ground truth, base f(x), "
                        f"Π(f(x))):\n\n![{method} samples]({rel_link(dst, out)})\n")
        else:
            text.append(f"{model} samples: no samples.png in the seed-{seed} run at {n} labeled.\n")
    dst = os.path.join(figdir, "imggen_val_curves.png")
    _plot_val_curves(main, sizes, dst)
    text.append("Validation MSE per epoch (Direct: f(x); Composed: Π(f(x))) and, where logged, ‖f‖ per epoch; "
                f"one line per seed:\n\n![validation curves]({rel_link(dst, out)})\n")
    return text


def _plot_val_curves(main, sizes, path):
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
