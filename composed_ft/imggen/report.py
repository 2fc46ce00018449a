"""results/imggen.md: the main table, the claim, one table per ablation, the denoisers, wall times —
all built from run directories.

Runs are grouped by their --tag: `main` gives the main table (the authors' Direct, the strongest
Direct, Composed at each number of labeled examples) and the claim (Composed Π(f(x)) against each
Direct, paired by seed, with a 95% CI of the difference); every other tag gives an ablation table
whose rows are the settings that vary between its runs, with the main runs of the same seeds as its
reference rows (the runner does not train those twice). Values are mean ± std over seeds."""
import functools
import json
import math
import os
import re
import time
from collections import defaultdict

from ..core import tables
from ..core.machine import of_runs
from ..core.records import lines as stored_lines
from ..core.runs import read_jsonl
from .config import LEGACY, comparable

# Settings that can distinguish runs within a tag (seed is averaged over).
VARIED = ["n_train", "bn_eps", "l2", "l2_scope", "dropout", "max_epoch", "denoiser.perturb", "denoiser.blur_max",
          "denoiser.unlabeled_fonts", "denoiser.unet_width", "denoiser.unet_layout"]
# Settings of runs made before the flag existed (this project's earlier f, loss and U-Net): config.LEGACY
STRONG = "strong"  # --variant of the strongest Direct we could make (the second Direct baseline)


def cfg(run, key):
    if key.startswith("denoiser."):
        k = key.split(".", 1)[1]
        v = run["results"].get("denoiser", {}).get(k)
        return LEGACY.get(k) if v is None and k == "unet_layout" else v
    v = run["config"].get(key)
    return LEGACY.get(key) if v is None else v


def mixed(runs):
    """The flag of a row whose seeds were made with different settings (core/tables.py), '' when they share
    every one: each run's config read as it was made (config.from_saved)."""
    return tables.mixed_note(runs, upgrade=comparable)


def _seeds(runs):
    return " ".join(str(s) for s in sorted({r["config"]["seed"] for r in runs}))


def settings(run):
    """f's regularization in words: what distinguishes the two Directs and Composed."""
    c = run["config"]
    s = f"BN eps {cfg(run, 'bn_eps'):g}, dropout {c.get('dropout', 0):g}, λ {c.get('l2', 0):g}"
    return s + (" (matrices only)" if c.get("l2") and cfg(run, "l2_scope") == "weights" else "")


def model_label(run):
    """Composed, Direct (authors'): eps 0.8, no dropout, λ 0 (or --variant authors), Direct
    (strongest): --variant strong; any other Direct (the earlier setting's runs) is plain Direct."""
    c, variant = run["config"], cfg(run, "variant")
    if c["method"] == "composed":
        return "Composed"
    if variant == STRONG:
        return "Direct (strongest)"
    authors = cfg(run, "bn_eps") == 0.8 and not c.get("dropout") and not c.get("l2")
    return "Direct (authors')" if variant == "authors" or authors else "Direct"


MODELS = ["Direct (authors')", "Direct", "Direct (strongest)", "Composed"]


def norm(run):
    """‖f‖ over every non-bias parameter; runs from before it was recorded logged matrices only
    under the same key (no weight_norm_matrices beside it), which is not comparable: None."""
    res = run["results"]
    return res["weight_norm"] if "weight_norm_matrices" in res else None


def by_seed(runs, key):
    acc = defaultdict(list)
    for r in runs:
        acc[r["config"]["seed"]].append(r["results"][key])
    return {s: sum(v) / len(v) for s, v in sorted(acc.items())}


def paired(new, ref):
    """(mean difference new - ref, std, n, 95% CI half-width) over the seeds both have: both
    methods of a seed share the split, the denoiser and the seed, so the difference is per seed."""
    d = [new[s] - ref[s] for s in new if s in ref]
    m, sd, n = tables.mean_std(d)
    return m, sd, n, tables.ci95(d)


# ---------------------------------------------------------------- per test pair

PAIR_RECORDS = "eval_test.jsonl"  # train.py writes it (the archive packs it: core/records.py)


@functools.lru_cache(maxsize=None)
def _pair_records(path, records=PAIR_RECORDS):
    found = stored_lines(os.path.join(path, records))
    if found is None:
        return None
    rows = [json.loads(line) for line in found if line.strip()]
    return {(r["font"], r["char"]): (r["mse_base"], r["mse_denoised"]) for r in rows}


def pair_mse(run, output):
    """{(font, character): the run's MSE on that test pair} of its `output` ("base": f(x), "denoised":
    Π(f(x))), or None for a run without per-pair records."""
    recs = _pair_records(run["path"], run.get("pair_records", PAIR_RECORDS))
    return None if recs is None else {k: v[output == "denoised"] for k, v in recs.items()}


def own_output(run):
    """The output a model is selected and compared by: Π(f(x)) for Composed, f(x) for Direct."""
    return "denoised" if run["config"]["method"] == "composed" else "base"


def paired_pairs(new, ref):
    """Two models tested on the same (font, character) pairs: new, ref = lists of (run, output). Per test
    pair the difference new - ref is averaged over the seeds both have (the test pairs are the sample:
    this CI says whether the difference is larger than test-set noise for these trained models; the
    seed CI says whether it survives retraining). Pairs common to every run; None without records or a
    common seed. Returns {n, seeds, diff, se, ci: (lo, hi), mde}: mde is the smallest true difference
    detected with 80% power at the 5% level."""
    get = lambda runs: {r["config"]["seed"]: pair_mse(r, o) for r, o in runs}  # noqa: E731
    a, b = get(new), get(ref)
    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
    if not seeds:
        return None
    keys = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds)))
    n = len(keys)
    if n < 2:
        return None
    d = [sum(a[s][k] - b[s][k] for s in seeds) / len(seeds) for k in keys]
    m = sum(d) / n
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n)
    return {"n": n, "seeds": seeds, "diff": m, "se": se, "ci": (m - tables.Z95 * se, m + tables.Z95 * se),
            "mde": (tables.Z95 + tables.Z80) * se}


def pair_cell(p, digits=4):
    """A per-pair comparison as `+0.0012 [-0.0003, +0.0027]`, or — without records."""
    if p is None:
        return "—"
    return f"{p['diff']:+.{digits}f} [{p['ci'][0]:+.{digits}f}, {p['ci'][1]:+.{digits}f}]"


def pair_resolved(p):
    return p is not None and (p["ci"][0] > 0 or p["ci"][1] < 0)


def verdict(m, h, n):
    """The sign of Composed - Direct (test MSE) and whether the seeds resolve it."""
    if n == 0:
        return "missing runs"
    sign = "Composed lower (better)" if m < 0 else ("tie" if m == 0 else "Composed higher (worse)")
    if n < 2:
        return f"{sign}; 1 seed, not resolved"
    return f"{sign}; " + ("resolved: CI excludes 0" if (m + h < 0 or m - h > 0) else "not resolved: CI contains 0")


def pair_verdict(p):
    if p is None:
        return "no per-pair records"
    return ("resolved: CI excludes 0" if pair_resolved(p) else "not resolved: CI contains 0") + \
        f" (detects ±{p['mde']:.4f})"


def claim_rows(main):
    """Per labeled size: Composed Π(f(x)) against each Direct f(x) and against the better of the two
    (the lower seed-mean test MSE; choosing it on the test set only makes the reference stronger)."""
    rows, words = [], []
    for n in sorted({r["config"]["n_train"] for r in main}, reverse=True):
        at = [r for r in main if r["config"]["n_train"] == n]
        comp_runs = [r for r in at if model_label(r) == "Composed"]
        comp = by_seed(comp_runs, "test_mse_denoised")
        direct_runs = {lab: [r for r in at if model_label(r) == lab] for lab in MODELS[:3]}
        directs = {lab: by_seed(rs, "test_mse_base") for lab, rs in direct_runs.items()}
        directs = {k: v for k, v in directs.items() if v}
        if not directs or not comp:
            continue
        mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
        better = min(directs, key=lambda k: mean(directs[k]))
        pairs = [(lab, lab) for lab in directs] + ([(f"better Direct = {better}", better)] if len(directs) > 1 else [])
        for lab, model in pairs:
            ref = directs[model]
            m, sd, k, h = paired(comp, ref)
            pp = paired_pairs([(r, "denoised") for r in comp_runs], [(r, "base") for r in direct_runs[model]])
            ci = f"[{m - h:+.4f}, {m + h:+.4f}]" if k >= 2 else "— (1 seed)"
            rows.append([str(n), lab, list(ref.values()), list(comp.values()),
                         f"{m:+.4f} ± {sd:.4f}" if k >= 2 else f"{m:+.4f}", ci,
                         f"{100 * m / mean(ref):+.1f}%", verdict(m, h, k), pair_cell(pp),
                         pair_verdict(pp), " ".join(map(str, sorted(comp)))])
            if lab.startswith("better") or len(directs) == 1:
                words.append(f"- **{n} labeled**: Composed Π(f(x)) {mean(comp):.4f} vs {better} {mean(ref):.4f}: "
                             f"{verdict(m, h, k)} (paired difference {m:+.4f}"
                             + (f", 95% CI [{m - h:+.4f}, {m + h:+.4f}]; the seeds resolve differences larger "
                                f"than ±{h:.4f}" if k >= 2 else "")
                             + (f"; per test pair {pair_cell(pp)} over {pp['n']} pairs x {len(pp['seeds'])} "
                                f"seed(s): {pair_verdict(pp)}" if pp else "") + ").")
    header = ["labeled", "reference", "Direct f(x)", "Composed Π(f(x))", "difference (paired by seed)",
              "95% CI (seeds)", "relative", "verdict (seeds)", "difference per test pair, 95% CI",
              "verdict (test pairs)", "seeds"]
    return header, rows, words


def main_table(main):
    groups = defaultdict(list)
    for r in main:
        groups[(r["config"]["n_train"], model_label(r))].append(r)
    rows = []
    for (n, lab) in sorted(groups, key=lambda k: (-k[0], MODELS.index(k[1]))):
        rs = groups[(n, lab)]
        v = lambda k: [r["results"][k] for r in rs if k in r["results"]]  # noqa: E731
        rows.append([str(n), lab + mixed(rs), " / ".join(sorted({settings(r) for r in rs})), v("test_mse_base"),
                     v("test_mse_denoised"), tables.fmt([x for x in map(norm, rs) if x is not None], 1),
                     tables.fmt(v("test_spread_base"), 3),
                     " ".join(f"{r['results']['best_epoch']}/{r['results']['epochs']}" for r in
                              sorted(rs, key=lambda r: r["config"]["seed"])),
                     _seeds(rs), str(sorted({r["results"]["n_test"] for r in rs}))])
    header = ["labeled", "model", "f's settings", "test MSE f(x)", "test MSE Π(f(x))", "‖f‖ (non-bias)",
              "spread of f(x)", "best epoch / epochs (per seed)", "seeds", "test pairs"]
    return header, rows


def snapshots(run):
    """A run continued by `train --extend` to a larger budget, as it was at each earlier budget: records
    like collect()'s (same path) whose results and per-pair records are the files the extension set aside
    (results_<updates>.json, eval_test_<updates>.jsonl) and whose config has that budget."""
    out = []
    for name in sorted(os.listdir(run["path"])):
        m = re.fullmatch(r"results_(\d+)\.json", name)
        if not m:
            continue
        stem = m.group(1)
        with open(os.path.join(run["path"], name)) as fh:
            res = json.load(fh)
        c = run["config"]
        budget = {"max_update": res["updates"]} if c.get("max_update") else {"max_epoch": res["epochs"]}
        out.append({**run, "config": {**c, **budget}, "results": res, "snapshot": int(stem),
                    "pair_records": f"eval_test_{stem}.jsonl"})
    return out


def reference_runs(tag, runs, main):
    """The main runs that are an ablation's reference rows: same seeds, methods and (except for the
    labeled-examples ablation, which spans every size) labeled sizes, never the strongest Direct; each
    at the ablation's budget: a main run since continued to a larger budget (`--extend`) is used as it
    was at the budget the ablation's runs of its method had, when that snapshot exists."""
    seeds = {r["config"]["seed"] for r in runs}
    methods = {r["config"]["method"] for r in runs}
    sizes = {r["config"]["n_train"] for r in runs}
    budgets = _budgets_by_method(runs)
    refs = []
    for r in main:
        if not (r["config"]["seed"] in seeds and r["config"]["method"] in methods and cfg(r, "variant") != STRONG
                and (tag == "ablation-labeled" or r["config"]["n_train"] in sizes)):
            continue
        wanted = budgets[r["config"]["method"]]
        if _budget(r) not in wanted:  # continued past the ablation's budget: the run as it was then, if kept
            r = next((s for s in snapshots(r) if _budget(s) in wanted), r)
        refs.append(r)
    return refs


def _budgets_by_method(runs):
    """method -> the budgets (_budget) the runs of that method were trained for."""
    budgets = defaultdict(set)
    for r in runs:
        budgets[r["config"]["method"]].add(_budget(r))
    return budgets


def _budget(run):
    """A run's budget as the ablation tables compare it: updates for an update budget, else epochs."""
    res = run["results"]
    return res["updates"] if run["config"].get("max_update") else res["epochs"]


def _show(key, v):
    if key == "denoiser.unlabeled_fonts" and v is None:
        return "all"
    return f"{v:g}" if isinstance(v, float) else str(v)


def ablation_table(runs, refs=(), tag=""):
    """One row per setting and method (mean over seeds), the main runs as reference rows, and per row its
    difference per test pair (95% CI over the pairs; one seed cannot give a seed CI) from the row it is
    measured against: the main run of the same method and size, or for the labeled-examples ablation,
    Composed against the authors' Direct at the same size."""
    everything = list(runs) + list(refs)
    ref_paths = {r["path"] for r in refs}
    varied = [k for k in VARIED if len({repr(cfg(r, k)) for r in everything}) > 1]
    groups = defaultdict(list)
    for r in everything:
        groups[tuple(cfg(r, k) for k in varied) + (r["config"]["method"],)].append(r)

    def sort_key(k):
        return tuple((v is None, v if isinstance(v, (int, float)) else 0, str(v)) for v in k)

    def against(rs, is_ref):
        c = rs[0]["config"]
        if tag == "ablation-labeled":
            if c["method"] != "composed":
                return None
            return [r for r in everything if r["config"]["method"] == "direct" and
                    r["config"]["n_train"] == c["n_train"] and cfg(r, "variant") != STRONG]
        if is_ref:
            return None
        return [r for r in refs if r["config"]["method"] == c["method"] and r["config"]["n_train"] == c["n_train"]]

    budgets = _budgets_by_method(runs)  # this ablation's own runs (reference rows aside)
    rows = []
    for key in sorted(groups, key=sort_key):
        rs = groups[key]
        res = lambda k: [r["results"][k] for r in rs if k in r["results"]]  # noqa: E731
        is_ref = all(r["path"] in ref_paths for r in rs)
        other = against(rs, is_ref)
        pp = paired_pairs([(r, own_output(r)) for r in rs], [(r, own_output(r)) for r in other]) if other else None
        # a reference row names its budget when it is a snapshot, and says so when it is not the ablation's
        own, label = _budget(rs[0]), " (main run)"
        theirs = budgets[rs[0]["config"]["method"]]
        if any("snapshot" in r for r in rs) or own not in theirs:
            unit = "updates" if rs[0]["config"].get("max_update") else "epochs"
            label = f" (main run at {own:,} {unit}" + (
                ")" if own in theirs else f"; this ablation's runs: {', '.join(f'{b:,}' for b in sorted(theirs))})")
        rows.append([_show(k, v) for k, v in zip(varied, key[:-1])] + [key[-1] + (label if is_ref else "") + mixed(rs),
                    res("test_mse_base"), res("test_mse_denoised"),
                    tables.fmt([x for x in map(norm, rs) if x is not None], 1), tables.fmt(res("test_spread_base"), 3),
                    " ".join(str(r["results"]["best_epoch"]) for r in rs),
                    pair_cell(pp) + (" *" if pair_resolved(pp) else ""), _seeds(rs)])
    delta = ("Composed Π(f(x)) − Direct f(x), per test pair [95% CI]" if tag == "ablation-labeled" else
             "Δ vs main run (own output), per test pair [95% CI]")
    return varied + ["method", "test MSE f(x)", "test MSE Π(f(x))", "‖f‖", "spread of f(x)", "best epoch",
                     delta, "seeds"], rows


BUDGET_RULE = ("the budget is 1.5 x the probe's best point (the lowest validation MSE of the model's own selection "
               "metric) rounded up, in the method's unit: Direct in epochs (to a multiple of 50; it overfits per pass "
               "over the data), Composed in updates (to a multiple of 1,000, the same at every labeled size: the L2 "
               "penalty shrinks f per update); the larger over the labeled sizes")


def suggested_budget(run):
    """(value, unit) the rule gives for one probe."""
    res = run["results"]
    if run["config"]["method"] == "composed":
        per_epoch = res["updates"] / max(res["epochs"], 1)
        return -(-int(1.5 * res["best_epoch"] * per_epoch) // 1000) * 1000, "updates"
    return -(-int(1.5 * res["best_epoch"]) // 50) * 50, "epochs"


def budget_rows(probes):
    """Per probe: its length, best epoch (and update), the validation MSE there and at fractions of the run,
    and the budget the rule gives."""
    rows = []
    for r in sorted(probes, key=lambda r: (-r["config"]["n_train"], model_label(r))):
        res = r["results"]
        curve = {m["epoch"]: m["val_mse"] for m in read_jsonl(os.path.join(r["path"], "metrics.jsonl")) if "epoch" in m}
        at = lambda e: [curve[e]] if e in curve else "—"  # noqa: E731
        best, per_epoch = res["best_epoch"], res["updates"] / max(res["epochs"], 1)
        value, unit = suggested_budget(r)
        rows.append([str(r["config"]["n_train"]), model_label(r), f"{res['epochs']} ({res['updates']})",
                     f"{best} ({int(best * per_epoch)})", at(best), at(max(1, best // 2)),
                     at(min(res["epochs"], 2 * best)), at(res["epochs"]), f"{value:,} {unit}"])
    return ["labeled", "model", "probe epochs (updates)", "best epoch (update)", "val MSE at best", "at best/2",
            "at 2 x best", "at the end", "budget by the rule"], rows


def wall_s(run):
    """A run's wall time. Runs resumed before the stage recorded `train_s` logged only their last
    process in wall_s: add the epochs that process did not run (the longest suffix of epoch times
    that fits in wall_s is taken as the last process's; the epochs before it ran earlier)."""
    res = run["results"]
    w = float(res.get("wall_s") or 0)
    if "train_s" in res or "epochs" not in res:
        return w
    ep = [float(m.get("epoch_s") or 0) for m in read_jsonl(os.path.join(run["path"], "metrics.jsonl")) if "epoch" in m]
    tail, k = 0.0, 0
    for e in reversed(ep):
        if tail + e > w:
            break
        tail, k = tail + e, k + 1
    return w + sum(ep[:len(ep) - k])


def denoiser_rows(denoisers):
    rows = []
    for r in denoisers:
        c, res = r["config"], r["results"]
        rows.append([os.path.relpath(r["path"], os.path.dirname(os.path.dirname(r["path"]))),
                     c["perturb"] + (f" s={c['blur_max']:g}" if c["perturb"] == "blur" else ""),
                     cfg(r, "unet_layout") if "unet_layout" in c else LEGACY["unet_layout"], str(c["unet_width"]),
                     str(res["n_unlabeled"]), str(res.get("updates", "?")), [res["val_mse_perturbed"]],
                     [res["val_mse_denoised"]], f"{wall_s(r) / 60:.1f}"])
    return ["run", "perturbation", "U-Net layout", "width", "unlabeled images", "updates", "held-out MSE perturbed",
            "held-out MSE denoised", "minutes"], rows


def curves(denoisers):
    """{run name: (median seconds per update, [(updates, minutes, held-out MSE)])} from the denoisers'
    curve rows. Minutes are updates x the median seconds per update between curve points: on a shared
    machine a stretch slowed by another job would otherwise bend the curve (the raw train_s is kept
    in metrics.jsonl)."""
    import statistics
    out = {}
    for r in denoisers:
        pts = [(m["updates"], m["train_s"], m["curve_val_mse"])
               for m in read_jsonl(os.path.join(r["path"], "metrics.jsonl")) if "curve_val_mse" in m]
        if len(pts) < 2:
            continue
        rate = statistics.median((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]))
        name = os.path.relpath(r["path"], os.path.dirname(os.path.dirname(r["path"])))
        out[name] = (rate, [(u, u * rate / 60, mse) for u, _, mse in pts])
    return out


def curve_rows(denoisers, every=500):
    rows = []
    for name, (rate, pts) in curves(denoisers).items():
        w = next(r["config"]["unet_width"] for r in denoisers if r["path"].endswith(name))
        rows += [[name, str(w), f"{rate:.3f}", str(u), f"{m:.1f}", [mse]] for u, m, mse in pts if u % every == 0]
    if not rows:
        return None
    return ["run", "U-Net width", "s/update (median)", "updates", "minutes (updates x median)",
            "held-out MSE denoised"], rows


def wall_rows(runs):
    groups = defaultdict(list)
    for r in runs:
        c = r["config"]
        groups[(c.get("tag") or "—", "denoiser" if c.get("stage") == "denoise" else c.get("method", "?"))].append(r)
    rows = [[tag, stage, str(len(rs)), f"{sum(wall_s(r) for r in rs) / 60:.1f}"]
            for (tag, stage), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "main", kv[0]))]
    return ["tag", "stage", "runs", "minutes (sum of wall_s)"], rows


def collect(runs_root):
    return tables.collect(os.path.join(runs_root, "*", "*")) + tables.collect(os.path.join(runs_root, "*"))


def write_tables(runs_root, out):
    runs = collect(runs_root)
    predictors = [r for r in runs if r["config"].get("stage") == "train"]
    denoisers = [r for r in runs if r["config"].get("stage") == "denoise"]
    if not predictors and not denoisers:
        from ..core.errors import UserError
        raise UserError(f"{runs_root}: no finished runs found")
    presets = sorted({r["config"]["preset"] for r in runs})
    commits = sorted({r["git_commit"] for r in runs if r.get("git_commit")})
    wall = sum(wall_s(r) for r in runs)
    sections = [
        "# Font generation (imggen): test MSE, lower is better\n",
        f"Generated by `python -m composed_ft.imggen table --runs {runs_root}` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"from {len(runs)} run directories. Preset: {', '.join(presets)}. Machine: "
        f"{of_runs([r['results'] for r in runs])}. Commits: {', '.join(c[:12] for c in commits)}. "
        f"Total training wall time: {wall / 60:.0f} min "
        "(sum of the runs' wall_s; runs on a shared machine are slower than on an idle one).\n",
        "Per-pixel MSE on the held-out (font, character) pairs, pixels in [-1, 1]; mean ± std over seeds. "
        "Each model is selected by its validation MSE (Direct: f(x); Composed: Π(f(x))). The denoiser Π is "
        "trained once and shared by every seed; the labeled/unlabeled split is fixed by --data-seed, seeds vary "
        "initialization, batch order and dropout. ‖f‖: the norm of every non-bias parameter of f (the set the "
        "authors' L2 penalty sums over). Spread of f(x): the per-image pixel std of the base predictor's test "
        "output, averaged (the ground truth's is about "
        + (f"{_truth_spread(predictors):.2f}" if _truth_spread(predictors) else "?")
        + "; gray, blurry output has a small one).\n",
    ]
    main = [r for r in predictors if r["config"].get("tag") == "main"]
    if main:
        h, rows = main_table(main)
        sections.append(("Main comparison", h, rows, {"digits": 4}))
        h, rows, words = claim_rows(main)
        if rows:
            sections.append("### The claim: Composed Π(f(x)) against Direct f(x)\n\n"
                            "Paired by seed: difference = Composed − Direct test MSE (negative: Composed better), "
                            "mean ± std over seeds and the 95% CI of its mean (Student's t): does the sign survive "
                            "retraining? Per test pair: every model is tested on the same (font, character) pairs; "
                            "the difference of the two models' MSE on a pair, averaged over the seeds, has a 95% "
                            "normal CI over the pairs: is the difference larger than the test set's sampling noise "
                            "(for these trained models; it says nothing about retraining)? `detects ±x`: the "
                            "smallest true difference found with 80% power at the 5% level.\n")
            sections.append(("", h, rows, {"digits": 4}))
            sections.append("In words:\n\n" + "\n".join(words) + "\n")
    probes = [r for r in predictors if r["config"].get("tag") == "budget"]
    if probes:
        sections.append(f"### Budget probes\n\nOne long run per main model (seed {_seeds(probes)}); its validation "
                        f"curve sets the cpu budget by one rule for every model: {BUDGET_RULE}.\n")
        sections.append(("", *budget_rows(probes), {"digits": 4}))
    abl_tags = sorted({r["config"].get("tag") for r in predictors} - {"main", "budget"})
    if abl_tags:
        sections.append("### Ablations\n\nOne row per setting (mean over the seeds it ran) beside the main runs of "
                        "the same seeds (`main run`). A one-seed ablation has no seed CI; its Δ column is the "
                        "per-test-pair difference from the row it is measured against, with a 95% CI over the test "
                        "pairs (`*`: the CI excludes 0). That CI covers the test set's sampling noise only: a "
                        "seed-to-seed spread (main table) is not in it, so a starred Δ smaller than the main runs' "
                        "seed std is not evidence.\n")
    for tag in abl_tags:
        tagged = [r for r in predictors if r["config"].get("tag") == tag]
        h, rows = ablation_table(tagged, reference_runs(tag, tagged, main), tag)
        sections.append((f"Ablation: {tag}", h, rows, {"digits": 4}))
    if denoisers:
        h, rows = denoiser_rows(denoisers)
        sections.append(("Denoisers (held-out unlabeled glyphs)", h, rows, {"digits": 4}))
        curve = curve_rows(denoisers)
        if curve:
            sections.append(("Denoisers: held-out MSE against training updates and time (curve points)",
                             *curve, {"digits": 4}))
    h, rows = wall_rows(runs)
    sections.append(("Wall time per tag and stage", h, rows, {}))
    tsv = os.path.splitext(out)[0] + ".tsv"
    tables.write(out, sections, tsv)
    print(f"wrote {out} and {tsv}")


def _truth_spread(predictors):
    v = [r["results"]["test_spread_truth"] for r in predictors if "test_spread_truth" in r["results"]]
    return v[0] if v else None
