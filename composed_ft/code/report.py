"""results/sanstype.md (+ .tsv): SansType accuracy tables built from run directories.

Every finished predictor run contributes two rows: its base output f(x) and Π applied to it
(for Composed runs that second row *is* the composed predictor Π(f(x))). Runs are grouped by
--tag (`main`, `ablation-...`) and by method and the settings that vary within the tag; values
are mean ± std over seeds."""
import os
import time
from collections import defaultdict

from composed_ft.core import tables
from composed_ft.core.errors import UserError
from composed_ft.core.io import display_path, display_paths
from composed_ft.core.machine import of_runs

LABELS = {"direct": "Direct", "pretrain": "Pretrained", "backtranslate": "Backtranslation"}
WITH_MAIN_REFERENCE = {"ablation-noise", "ablation-unlabeled", "ablation-baseline", "ablation-init", "ablation-lam",
                       "bt"}
TITLES = {"bt": "Backtranslation (target bt), main runs as reference"}
# rows per evaluated model: (results key, label for a Composed run, label for the others); `gated`:
# Π's output only where f's program fails to compile
ROW_KINDS = (("base", "f(x)", "base"), ("denoised", "Π(f(x))", "+ Π"), ("gated", "Π(f(x)) gated", "+ Π gated"))
VARIED = ["lam", "reinforce_baseline", "denoiser.noise", "denoiser.n_unlabeled", "n_train", "beam"]


def add_args(p):
    p.add_argument("--runs", default="runs/sanstype/cpu", help="root of the run directories to collect")
    p.add_argument("--out", default="results/sanstype.md", help="markdown table (TSV written beside it)")


def run(args):
    write_tables(args.runs, args.out)
    return 0


# Composed's objective, by how log p_f(ŷ|x) is computed (reinforce.py): the authors' code (padded, eval) is the
# paper's row and keeps the plain name; the equation as the paper writes it (masked, train) is a named variant
OBJECTIVE_NAMES = {("padded", "eval"): "Composed", ("masked", "train"): "Composed as written"}
# the rows of the main comparison, in order
ORDER = ["Direct", "Pretrained", "Pretrained, continued", "Pretrained, continued (best val CE)", "Backtranslation",
         "Composed (from Pretrained)", "Composed as written (from Pretrained)",
         "Composed (from Pretrained), loo baseline", "Composed (from Direct)", "Composed (from Backtranslation)"]


def method_label(r):
    """A run's row name: its stage; for the compose stage its objective, its init and a REINFORCE baseline,
    or, with the REINFORCE term off, "<init>, continued" (the control), "(best val CE)" when the run was
    evaluated at its checkpoint of the best validation CE. Runs older than an option read its default."""
    c, res = r["config"], r["results"]
    if c["stage"] == "compose":
        init = LABELS.get(res.get("init_stage"), res.get("init_stage"))
        if c.get("reinforce", "on") == "off":
            return f"{init}, continued" + (" (best val CE)" if res.get("checkpoint") == "best_val_nll" else "")
        obj = (c.get("logp_sum") or "masked", c.get("logp_mode") or "train")
        name = OBJECTIVE_NAMES.get(obj, f"Composed (log p {obj[0]}, {obj[1]} mode)")
        baseline = c.get("reinforce_baseline") or "none"
        return f"{name} (from {init})" + ("" if baseline == "none" else f", {baseline} baseline")
    return LABELS.get(c["stage"], c["stage"])


def _get(r, key):
    if key.startswith("denoiser."):
        return (r["results"].get("denoiser") or {}).get(key.split(".", 1)[1])
    if key == "init_stage":
        return r["results"].get("init_stage")
    return r["config"].get(key)


def _seeds(rs):
    return " ".join(str(s) for s in sorted({r["config"]["seed"] for r in rs}))


# (ID split, OOD split) pairs per data set, each (key in results.json "eval", column label); SansType's
# second pair is the large generated test set (make-sanstype --n-gen) beside the released 500
SPLIT_PAIRS = {
    "sanstype": [(("test", "ID test"), ("ood", "OOD test")),
                 (("test_gen", "ID generated"), ("ood_gen", "OOD generated"))],
    "spoc": [(("testw", "TestW (ID)"), ("testp", "TestP (OOD)"))],
}
# evaluation splits per data set: (split, column label); SPoC: TestW in distribution, TestP out of it
SPLITS = {"sanstype": [("test", "test"), ("ood", "OOD")], "spoc": [("testw", "TestW (ID)"), ("testp", "TestP (OOD)")]}


def dataset_of(runs):
    evals = {k for r in runs for k in r["results"].get("eval", {})}
    return "spoc" if "testp" in evals or "testw" in evals else "sanstype"


# paths of a seed's own runs (each seed its own Π and init) and of the vocabulary file (vocab_md5 is its identity)
PER_SEED_PATHS = ("denoiser", "init", "reverse_model", "vocab")


def _mixed(runs):
    """A row's flag when its seeds were made with different settings (core/tables.py), else ''."""
    from composed_ft.code.config import comparable
    return tables.mixed_note(runs, ignore=PER_SEED_PATHS, upgrade=comparable)


def predictor_rows(runs, varied=(), splits=SPLITS["sanstype"]):
    groups = defaultdict(list)
    for r in runs:
        groups[(method_label(r),) + tuple("—" if _get(r, k) is None else str(_get(r, k)) for k in varied)].append(r)
    def num(v):
        try:
            return (0, float(v), "")
        except ValueError:
            return (1, 0.0, v)
    keys = sorted(groups, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[0], [num(v) for v in k[1:]]))
    acc_rows, err_rows = [], []
    for k in keys:
        rs = groups[k]
        composed = k[0].startswith("Composed")
        for kind, composed_label, plain_label in ROW_KINDS:
            label = composed_label if composed else plain_label
            if not all(kind in r["results"]["eval"].get(splits[0][0], {}) for r in rs):
                continue
            name = f"{k[0]} {label}" + _mixed(rs)
            v = lambda split, m: [r["results"]["eval"][split][kind][m] for r in rs  # noqa: E731
                                  if split in r["results"]["eval"]]
            acc_rows.append([name, *k[1:], *[v(sp, "accuracy") for sp, _ in splits], _seeds(rs)])
            for split, _ in splits:
                err_rows.append([name, *k[1:], split, v(split, "accuracy"), v(split, "compile_error_rate"),
                                 v(split, "runtime_error_rate"), v(split, "wrong_output_rate"),
                                 "%.1f" % (sum(v(split, "hit_limit")) / max(len(rs), 1))])
    acc_h = ["method", *varied, *[f"{label} accuracy (%)" for _, label in splits], "seeds"]
    err_h = ["method", *varied, "split", "correct (%)", "compile error (%)", "runtime error (%)", "wrong output (%)",
             "hit length limit (count)"]
    return acc_h, acc_rows, err_h, err_rows


def denoiser_rows(runs):
    """One row per denoiser: exact repairs of its own validation pairs and, on the authors' data, of
    the same corruption applied to the released train programs (programs it never saw: the outputs f
    is trained towards)."""
    rows = []
    released = any("train_repair_exact_match" in r["results"] for r in runs)
    for r in runs:
        c, res = r["config"], r["results"]
        row = [os.path.basename(r["path"]), c["noise"], str(res["n_unlabeled"]), c["arch"], str(res["epochs"]),
               [res["val_exact_match"] * 100], [res["val_input_already_clean"] * 100]]
        if released:
            row += [[res["train_repair_exact_match"] * 100] if "train_repair_exact_match" in res else "—",
                    [res["train_repair_input_already_clean"] * 100] if "train_repair_exact_match" in res else "—"]
        rows.append(row + [f"{res['wall_s'] / 60:.1f}"])
    header = ["run", "noise", "unlabeled programs", "arch", "epochs", "val exact match (%)",
              "val inputs already clean (%)"]
    if released:
        header += ["released train: exact repairs (%)", "released train: inputs already clean (%)"]
    return header + ["minutes"], rows


def _spoc_notes(runs_root, preds):
    """The data mapping (official split or fallback) and the gold ceiling, printed beside the tables."""
    import json
    notes = sorted({(r["results"].get("data_note") or "") for r in preds} - {""})
    out = [f"Data: {display_paths(n)}.\n" for n in notes]
    path = os.path.join(runs_root, "gold_ceiling", "spoc_summary.json")
    if os.path.exists(path):
        with open(path) as fh:
            g = json.load(fh)
        t = g["table"][g["chosen_std"]]
        lim = f" (first {g['limit']} programs per split)" if g.get("limit") else ""
        out.append(f"Gold ceiling (the gold programs through the same judge, -std={g['chosen_std']}){lim}: "
                   f"TestW {100 * t['testw']['accuracy']:.2f}%, TestP {100 * t['testp']['accuracy']:.2f}%.\n")
    else:
        out.append(f"Gold ceiling: not measured ({path} missing; `python -m composed_ft.code gold-ceiling "
                   f"--dataset spoc --out {os.path.dirname(path)}`).\n")
    return out


def _variant_of(r):
    """Which SansType a run trained on: the data set's manifest variant recorded in results.json
    (runs before the authors' variant existed trained on the strict one)."""
    return r["results"].get("data_variant") or ("strict" if dataset_of([r]) == "sanstype" else "—")


def denoiser_per_seed(preds):
    """True when the runs of each seed used their own denoiser (a different Π per seed)."""
    dens = defaultdict(set)
    for r in preds:
        d = (r["results"].get("denoiser") or {}).get("run_dir")
        if d:
            dens[r["config"]["seed"]].add(os.path.basename(os.path.normpath(d)))
    return len(dens) > 1 and len(set.union(*dens.values())) >= len(dens)


def backfill(runs_root):
    """Runs evaluated before the gated + Π row existed get it from their per-example records."""
    import glob

    from composed_ft.code.judge import backfill_gated
    for d in sorted({os.path.dirname(p) for p in glob.glob(os.path.join(runs_root, "**", "eval_*.jsonl"),
                                                           recursive=True)}):
        backfill_gated(d)


def write_tables(runs_root, out):
    backfill(runs_root)
    runs = tables.collect(os.path.join(runs_root, "*", "*")) + tables.collect(os.path.join(runs_root, "*"))
    preds = [r for r in runs if r["config"].get("stage") in ("direct", "pretrain", "compose", "backtranslate")
             and "eval" in r["results"]]
    dens = [r for r in runs if r["config"].get("stage") == "denoise"]
    if not preds and not dens:
        raise UserError(f"{runs_root}: no finished runs found")
    presets = sorted({r["config"]["preset"] for r in runs})
    commits = sorted({r["git_commit"] for r in runs if r.get("git_commit")})
    wall = sum(r["results"].get("wall_s", 0) for r in runs)
    ds = dataset_of(preds)
    evaluated = {k for r in preds for k in r["results"]["eval"]}
    splits = [s for pair in SPLIT_PAIRS[ds] for s in pair if s[0] in evaluated] or SPLITS[ds]
    n_eval = {label: sorted({r["results"]["eval"][sp]["n"] for r in preds if sp in r["results"]["eval"]})
              for sp, label in splits}
    main = [r for r in preds if r["config"].get("tag") == "main"]
    title = {"sanstype": "SansType pseudocode-to-code", "spoc": "SPoC pseudocode-to-code (full programs)"}[ds]
    variants = sorted({str(r["config"].get("variant") or _variant_of(r)) for r in preds})
    if ds == "sanstype":
        title += (" (the paper's data)" if variants == ["authors"] else " (strict variant, beyond the paper)"
                  if variants == ["strict"] else "")
    sections = [
        f"# {title}: accuracy of generated programs\n",
        f"Generated by `python -m composed_ft.code table --runs {display_path(runs_root)}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')} "
        f"from {len(runs)} run directories. Preset: {', '.join(presets)}. Seeds: {_seeds(preds) if preds else '-'}. "
        f"Machine: {of_runs([r['results'] for r in runs])}. Commits: {', '.join(c[:12] for c in commits)}. "
        f"Total wall time: {wall / 60:.0f} min. Examples evaluated per split: "
        + ", ".join(f"{k} {v}" for k, v in n_eval.items()) + ".\n",
    ]
    if ds == "spoc":
        sections += _spoc_notes(runs_root, preds)
    sections.append(
        "A program is correct when it compiles and prints the gold output on " +
        ("every test case of its problem" if ds == "spoc" else "the example's test input") +
        " (sandboxed g++). `base` is the model's greedy output, `+ Π` the frozen denoiser applied to it at test "
        "time; for Composed runs the two rows are the base predictor f(x) and the composed predictor Π(f(x)). "
        "`gated`: Π's output is used only where f's program fails to compile (the compiler as the gate that "
        "decides whether an output is broken; computed from the same judgements). "
        + ("Mean ± std over seeds; each seed trains its own denoiser Π, so the ± includes Π's variation.\n"
           if denoiser_per_seed(preds) else
           "Mean ± std over predictor seeds; the denoiser is trained once and shared by the seeds.\n"))
    if main:
        h, rows, eh, erows = predictor_rows(main, splits=splits)
        sections.append(("Main comparison (accuracy, %)", h, rows, {"digits": 1, "scale": 100}))
        sections.append(("Outcomes (main runs, % of programs)", eh, erows, {"digits": 1, "scale": 100}))
    for tag in sorted({r["config"].get("tag") for r in preds} - {"main"}):
        rs = [r for r in preds if r["config"].get("tag") == tag]
        if tag in WITH_MAIN_REFERENCE:  # the main runs (structured noise, all unlabeled programs) as reference,
            # of the seeds the ablation ran: a one-seed ablation beside a three-seed mean would compare draws
            seeds = {r["config"]["seed"] for r in rs}
            rs += [r for r in main if r["config"]["seed"] in seeds and (
                r["config"]["stage"] in ("direct", "pretrain")
                or (r["config"]["stage"] == "compose" and r["results"].get("init_stage") == "pretrain"))]
        varied = [k for k in VARIED if len({repr(_get(r, k)) for r in rs}) > 1]
        h, rows, _, _ = predictor_rows(rs, varied, splits=splits)
        sections.append((TITLES.get(tag, f"Ablation: {tag or '(untagged)'}"), h, rows, {"digits": 1, "scale": 100}))
    if dens:
        h, rows = denoiser_rows(dens)
        sections.append(("Denoisers (exact repairs of corrupted programs it never saw)", h, rows, {"digits": 1}))
    tsv = os.path.splitext(out)[0] + ".tsv"
    tables.write(out, sections, tsv)
    print(f"wrote {out} and {tsv}")
