"""Evaluation of a trained predictor f: its greedy (or beam) outputs on each evaluation split and Π
applied to them (+ Π), judged by the sandboxed judge (judge.py). results.json holds the rates,
eval_<split>.jsonl one record per example (what `errors`, `compare` and the report read).

    evaluate       every split, base and + Π (and the gated row built from the two)
    finish_predictor   the end of every predictor stage: best checkpoint, evaluation, results.json
    run_evaluate   `python -m composed_ft.code evaluate`: re-evaluate a finished run (e.g. --beam)
"""
import concurrent.futures
import dataclasses
import json
import logging
import os
import time

from composed_ft.code import model as models
from composed_ft.code.config import from_saved
from composed_ft.code.corpus import Corpus
from composed_ft.code.cpp_tokenize import detokenize_program
from composed_ft.code.decode import generate
from composed_ft.code.judge import evaluate_programs, gated_summary, summarize
from composed_ft.code.tokens import EOS, file_md5
from composed_ft.code.training import generation_limit
from composed_ft.core.device import get_device
from composed_ft.core.errors import UserError
from composed_ft.core.io import write_text
from composed_ft.core.runs import Run, read_json
from composed_ft.core.trainer import load_best

log = logging.getLogger(__name__)


def cut_sources(srcs, positions):
    """Sources cut to what an encoder of `positions` learned positions holds (EOS kept), and how
    many were cut."""
    n = positions - 1
    return [s[:n - 1] + [EOS] if len(s) > n else s for s in srcs], sum(len(s) > n for s in srcs)


def evaluate(run, f, pi, corpus, cfg, device, max_len, splits=None, suffix=""):
    """Judge f's greedy (or beam) outputs and Π applied to them on each split. Returns results
    per split: {"base": summary, "denoised": summary}, and writes eval_<split><suffix>.jsonl.

    The judge of a split runs in a background thread (its work is in g++ and program processes on every
    core, `--jobs`) while the next split is decoded; one split is judged at a time, in order, and a
    program's verdict does not depend on when it is judged, so the records are those of judging after
    decoding."""
    mode = "beam" if cfg.beam else "greedy"
    res, pending = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge") as judges:
        for split in splits or cfg.eval_splits:
            exs = corpus.split(split, cfg.n_eval)
            srcs = corpus.encode([e["src"] for e in exs])
            srcs, n_cut = cut_sources(srcs, models.positions(f))
            if n_cut:  # longer pseudocode than the encoder's positions is cut (counted in results)
                log.info("%s: %d of %d sources cut to %d tokens", split, n_cut, len(srcs), models.positions(f) - 1)
            tests = corpus.tests(split, exs)
            t0 = time.time()
            outs, hit = generate(f, srcs, max_len=max_len, mode=mode, beam=cfg.beam or 5, device=device)
            rows = {"base": (outs, hit)}
            if pi is not None:  # Π's own positions bound its input and output
                d_srcs, _ = cut_sources([o + [EOS] for o in outs], models.positions(pi))
                d_outs, d_hit = generate(pi, d_srcs, max_len=min(max_len, models.positions(pi) - 2), mode=mode,
                                         beam=cfg.beam or 5, device=device)
                rows["denoised"] = (d_outs, d_hit)
            res[split] = {"n": len(exs), "decode_s": time.time() - t0, "sources_cut": n_cut}
            decoded = {kind: _programs(corpus, o) for kind, (o, _) in rows.items()}
            judged = judges.submit(_timed, judge_outputs, corpus, split, exs, tests, decoded, judge_jobs(cfg))
            pending.append((split, exs, rows, decoded, judged))
        for split, exs, rows, decoded, judged in pending:
            verdicts, res[split]["judge_s"] = judged.result()
            _record(run, split, exs, rows, decoded, verdicts, res[split], pi is not None, suffix)
    return res


def judge_jobs(cfg):
    """The judge's processes: --jobs, else OMP_NUM_THREADS where it is set (a stage given one thread beside
    other stages, code/runner.sh JOBS=2: a pool of every core would oversubscribe them), else every core."""
    return cfg.jobs or int(os.environ.get("OMP_NUM_THREADS") or 0) or None


def _timed(fn, *args):
    t0 = time.time()
    return fn(*args), time.time() - t0


def _record(run, split, exs, rows, decoded, verdicts, out, gated, suffix):
    """A split's summaries (into `out`) and its per-example records (eval_<split><suffix>.jsonl)."""
    per = [{"index": i, "src": e["src"], "gold": e["tgt"]} for i, e in enumerate(exs)]
    for kind, (o, h) in rows.items():
        texts, _ = decoded[kind]
        judged = verdicts[kind]
        s = summarize(judged)
        s["hit_limit"] = int(sum(h))
        s["exact_match"] = sum(t == e["tgt"] for t, e in zip(texts, exs)) / max(len(exs), 1)
        out[kind] = s
        for p, t, hh, j in zip(per, texts, h, judged):
            p[kind] = {"pred": t, "hit_limit": bool(hh), "outcome": j["outcome"],
                       "compile_error": (j.get("compile_error") or "")[:500] or None,
                       "failure": j.get("failure")}
    if gated:
        out["gated"] = gated_summary(per)
    write_text(run.file(f"eval_{split}{suffix}.jsonl"), "".join(json.dumps(p) + "\n" for p in per))
    msg = " | ".join(f"{k} acc {s['accuracy']:.3f} (compile err {s['compile_error_rate']:.3f}, hit limit "
                     f"{s['hit_limit']})" for k, s in ((k, out[k]) for k in rows))
    log.info("%s %s: %s", run.path, split, msg)


def _programs(corpus, outs):
    texts = [corpus.tok.decode(o) for o in outs]
    return texts, [detokenize_program(t, indent_anywhere=corpus.indent_anywhere) for t in texts]


def judge_outputs(corpus, split, exs, tests, decoded, jobs):
    """{kind: judgements} of the decoded programs of every row kind (base, denoised), judged in one call so
    that a program both rows produced (Π often returns its input) is compiled and run once. On a split
    whose gold programs were all checked in the judge when the data set was made (manifest
    `gold_checked`), an output whose tokens equal the gold program's is that program: it is correct
    without judging it again (its record says `judged: false`)."""
    gold_ok = split in corpus.manifest.get("gold_checked", [])
    flat = [(kind, i, prog) for kind, (texts, progs) in decoded.items()
            for i, (t, prog) in enumerate(zip(texts, progs)) if not (gold_ok and t == exs[i]["tgt"])]
    judged = evaluate_programs([p for _, _, p in flat], [tests[i] for _, i, _ in flat], jobs=jobs, std=corpus.std,
                               compare=corpus.compare, desc=f"judging {split}")
    out = {kind: [{"outcome": "correct", "tests_passed": len(tests[i]), "tests_total": len(tests[i]),
                   "compile_error": None, "failure": None, "judged": False} for i in range(len(exs))]
           for kind in decoded}
    for (kind, i, _), j in zip(flat, judged):
        out[kind][i] = j
    return out


def denoiser_info(cfg, path):
    """What the results record of the Π a predictor was evaluated with."""
    if cfg is None:
        return None
    n = cfg.n_unlabeled
    res_path = os.path.join(path, "results.json") if os.path.isdir(path) else None
    if res_path and os.path.exists(res_path):
        with open(res_path) as fh:
            n = json.load(fh).get("n_unlabeled", n)  # the number actually used (0 in the config = all)
    return {"run_dir": path, "noise": cfg.noise, "n_unlabeled": n, "arch": cfg.arch, "dropout": cfg.dropout}


def finish_predictor(run, f, corpus, cfg, device, summary, t0, extra=None, trained=None):
    """The end of a predictor stage: the kept checkpoint's weights, evaluation with and without Π,
    results.json."""
    load_best(run, trained if trained is not None else f)
    pi, dcfg = models.load_denoiser(cfg.denoiser, device, cfg.vocab_md5)
    tgts = corpus.gold_targets(cfg.eval_splits)
    max_len = generation_limit(cfg, tgts)
    res = {"stage": cfg.stage, "method": cfg.method, "max_len": max_len,
           "longest_gold_target": max(len(t) for t in tgts), **summary, **(extra or {}),
           "denoiser": denoiser_info(dcfg, cfg.denoiser), "n_params": models.count_parameters(f),
           "data_note": corpus.manifest.get("note"), "data_variant": corpus.manifest.get("variant")}
    t_eval = time.time()
    res["eval"] = evaluate(run, f, pi, corpus, cfg, device, max_len)
    res["eval_s"] = time.time() - t_eval  # decoding and judging every split (what scales with --n-eval)
    res["wall_s"] = time.time() - t0 + summary.get("resumed_train_s", 0.0)
    run.finish(res)
    return res


def run_evaluate(args):
    """Re-evaluate a finished predictor run (e.g. with --beam) without touching its results.json; with
    --into-results, the run's own evaluation redone on some splits, written into its records; with --as-run,
    its model evaluated with another Π, written as a run directory of its own."""
    run = Run(args.run_dir)
    saved = from_saved(read_json(run.file("config.json"))["config"])  # a clear error when RUN is not a run dir
    if args.into_results or args.as_run:
        _check_own_evaluation(run, saved, args)
    if args.as_run and Run(args.as_run).finished:
        log.info("%s: finished already, nothing to do", args.as_run)
        return 0
    cfg = dataclasses.replace(
        saved, beam=args.beam, jobs=args.jobs, eval_splits=tuple(args.eval_splits),
        n_eval=saved.n_eval if args.n_eval is None else args.n_eval,
        max_len=saved.max_len if args.max_len is None else args.max_len, denoiser=args.denoiser or saved.denoiser)
    device = get_device(args.device)
    corpus = Corpus(cfg)
    vocab_md5 = file_md5(cfg.vocab)  # the vocabulary file must still be the one the run was trained with
    f, _ = models.load(run.file(f"checkpoint_{args.checkpoint}.pt"), device, None, vocab_md5)
    pi, dcfg = models.load_denoiser(cfg.denoiser, device, vocab_md5)
    if args.into_results:
        return _into_results(run, f, pi, corpus, cfg, device)
    if args.as_run:
        return _as_run(run, saved, f, pi, dcfg, corpus, cfg, device, args)
    suffix = f"_beam{args.beam}" + ("_last" if args.checkpoint == "last" else "")
    res = evaluate(run, f, pi, corpus, cfg, device, generation_limit(cfg, corpus.gold_targets(cfg.eval_splits)),
                   suffix=suffix)
    out = args.out or run.file(f"eval{suffix}.json")
    write_text(out, json.dumps(res, indent=1))
    print(f"wrote {out}")
    return 0


def _check_own_evaluation(run, saved, args):
    """--into-results and --as-run redo what the run's own evaluation did: same checkpoint, beam, examples and
    generation limit, and for --into-results the same denoiser (else its records would mix two evaluations)."""
    option = "--into-results" if args.into_results else "--as-run"
    if not run.finished:
        raise UserError(f"{run.path}: not finished (no results.json); {option} redoes a finished run's evaluation")
    given = {"--beam": (args.beam, saved.beam or 0), "--n-eval": (args.n_eval, None), "--max-len": (args.max_len, None),
             "--out": (args.out, None)}
    if args.into_results:  # --as-run may evaluate another kept checkpoint (a second selection rule)
        given["--checkpoint"] = (args.checkpoint, "best")
    if args.as_run and not args.denoiser:
        raise UserError(f"{run.path}: --as-run evaluates the run's model with a denoiser of your choice (the run's "
                        f"own included); give --denoiser")
    if args.into_results:
        given["--denoiser"] = (args.denoiser, None)
    bad = [flag for flag, (value, own) in given.items() if value != own]
    if bad:
        raise UserError(f"{run.path}: {option} redoes the run's own evaluation; drop {', '.join(bad)}")


def _own_limit(run, res, corpus, cfg):
    """The generation limit of the run's own evaluation: its results record the one it used; the splits now
    must give the same (a longer gold target in a grown split would change every split's decoding)."""
    max_len = generation_limit(cfg, corpus.gold_targets(tuple(res.get("eval", {})) or cfg.eval_splits))
    if res.get("max_len") not in (None, max_len):
        raise UserError(f"{run.path}: its evaluation used generation limit {res['max_len']}, the data now gives "
                        f"{max_len}; retrain, or evaluate without --into-results / --as-run")
    return max_len


def _as_run(src, saved, f, pi, dcfg, corpus, cfg, device, args):
    """src's model (its --checkpoint), evaluated on src's splits with cfg.denoiser, as the run directory
    args.as_run: its config is src's with the denoiser (and --tag) replaced, its results src's training summary
    with this evaluation and `checkpoint` naming the weights; no checkpoint file (src holds the weights;
    `trained_in` names it)."""
    res = src.results()
    max_len = _own_limit(src, res, corpus, cfg)
    config = {**json.loads(json.dumps(dataclasses.asdict(saved))), "denoiser": cfg.denoiser,
              "run_dir": args.as_run, "tag": args.tag or saved.tag}
    run = Run(args.as_run, config).start()
    t0 = time.time()
    new = evaluate(run, f, pi, corpus, cfg, device, max_len, splits=tuple(res["eval"]))
    eval_s = time.time() - t0
    own = ("eval", "eval_s", "wall_s", "denoiser", "machine", "re_evaluated")  # this run's, not src's
    keep = {k: v for k, v in res.items() if k not in own}
    out = {**keep, "eval": new, "denoiser": denoiser_info(dcfg, cfg.denoiser), "trained_in": src.path,
           "checkpoint": args.checkpoint,
           "eval_s": eval_s, "wall_s": eval_s,  # this run's own cost: the evaluation
           "data_note": corpus.manifest.get("note")}
    run.finish(out)
    print(f"{run.path}: {src.path}'s model ({args.checkpoint}) evaluated with Π {cfg.denoiser}")
    return 0


def _into_results(run, f, pi, corpus, cfg, device):
    res = run.results()
    max_len = _own_limit(run, res, corpus, cfg)
    t0 = time.time()
    new = evaluate(run, f, pi, corpus, cfg, device, max_len)
    res["eval"] = {**res.get("eval", {}), **new}
    res.setdefault("re_evaluated", []).append({
        "at": time.strftime("%Y-%m-%d %H:%M:%S"), "splits": list(new), "eval_s": time.time() - t0,
        "data_note_before": res.get("data_note"), "data_note": corpus.manifest.get("note")})
    res["data_note"] = corpus.manifest.get("note")
    run.finish(res)
    sizes = ", ".join(f"{split} ({new[split]['n']})" for split in new)
    print(f"{run.path}: re-evaluated {sizes} into results.json")
    return 0
