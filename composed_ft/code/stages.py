"""The training stages of the code experiments, each one run directory, one resolved config
(config.py) and one call of the shared training loop (training.py), then evaluation of the trained
model (evaluation.py).

    denoise        Π: corrupted unlabeled programs -> clean (--noise structured|delete|given|given-lines)
    direct         f from scratch on the labeled pairs (--reverse: code -> pseudocode, the
                   backtranslation reverse model)
    pretrain       f initialized from Π, standard fine-tuning
    compose        f (from --init: Pretrained, Direct or Backtranslation) trained through the frozen
                   Π with the REINFORCE objective (reinforce.py); selection by val NLL_Π(y | ŷ)
    backtranslate  the reverse model labels unlabeled programs; f trains on real + pseudo pairs

Every predictor is evaluated on its evaluation splits: its greedy output (base) and Π applied to it
(+ Π), judged by the sandboxed judge.
"""
import logging
import os
import random
import time

from composed_ft.code import model as models
from composed_ft.code.batching import token_batches
from composed_ft.code.decode import generate, length_limit
from composed_ft.code.evaluation import finish_predictor
from composed_ft.code.losses import validation_nll
from composed_ft.code.reinforce import composed_loss, composed_terms, denoiser_nll, sample_update
from composed_ft.code.tokens import EOS
from composed_ft.code.training import (
    ce_step,
    ce_validation,
    eval_tokens,
    fit_stage,
    generation_limit,
    per_batch_mean,
    prepare,
    rank0_only,
)
from composed_ft.core.compose import Composed
from composed_ft.core.errors import UserError
from composed_ft.core.io import write_text
from composed_ft.core.runs import Run
from composed_ft.core.trainer import load_best

log = logging.getLogger(__name__)


def _nothing_to_do(args):
    """A stage with nothing to train: the finished run's results (None when the stage is off)."""
    run = Run(args.run_dir)
    return run.results() if run.finished else None


def seeded_rng(*parts):
    """A random.Random seeded from ints (for corruptions drawn per epoch that replay on resume)."""
    return random.Random(hash(tuple(int(p) for p in parts)) & 0xFFFFFFFF)


# ---------------------------------------------------------------- the denoiser Π

def _corruption(noise, corpus, delete_p):
    """corrupt(tgt, rng) of --noise structured|delete for this data set: the authors' corruption of
    their format (SANSTYPE.md §6), or the strict variant's / the generic token deletion."""
    from composed_ft.code import corruptions
    if corpus.manifest.get("variant") == "authors":
        if noise == "structured":
            return corruptions.corrupt_authors
        return lambda t, rng: corruptions.delete_tokens_authors(t, rng, delete_p)
    if noise == "structured":
        return corruptions.corrupt_sanstype
    return lambda t, rng: corruptions.delete_tokens(t, rng, delete_p)


def _denoising_pairs(cfg, corpus):
    """(clean targets, given corrupted sources or None, validation corrupted, validation clean, corrupt)."""
    unl, unl_val = corpus.split("unlabeled", cfg.n_unlabeled), corpus.split("unlabeled_val", cfg.n_valid)
    if cfg.noise not in ("given", "given-lines"):
        corrupt = _corruption(cfg.noise, corpus, cfg.delete_p)
        val_clean = [e["tgt"] for e in unl_val]
        vrng = seeded_rng(cfg.seed, 999_999)
        return [e["tgt"] for e in unl], None, [corrupt(t, vrng) for t in val_clean], val_clean, corrupt
    # fixed corrupted copies (make-spoc): the same pairs every epoch
    if any(e["src"] is None for e in unl + unl_val):
        raise UserError(f"{corpus.dir}/unlabeled.src: missing; --noise {cfg.noise} needs corrupted inputs")
    if cfg.noise == "given-lines":
        from composed_ft.code.corruptions import changed_line_windows
        unl, unl_val = ([{"src": a, "tgt": b} for e in es for a, b in
                         changed_line_windows(e["src"], e["tgt"], cfg.line_context)] for es in (unl, unl_val))
    return ([e["tgt"] for e in unl], [e["src"] for e in unl], [e["src"] for e in unl_val],
            [e["tgt"] for e in unl_val], None)


def run_denoise(args):
    prepared = prepare(args, "denoise")
    if prepared is None:
        return _nothing_to_do(args)
    cfg, run, corpus, ctx = prepared
    device = ctx.device
    t0 = time.time()
    clean, given, val_noisy, val_clean, corrupt = _denoising_pairs(cfg, corpus)
    tgts = corpus.encode(clean)
    vs, vt = corpus.encode(val_noisy), corpus.encode(val_clean)
    log.info("denoiser: %d unlabeled %s (+%d validation), noise %s", len(clean),
             "line windows" if cfg.noise == "given-lines" else "programs", len(val_clean), cfg.noise)
    if cfg.init:  # continue from another denoiser (the line-wise stage); its architecture is taken
        model, _ = models.load(cfg.init, device, ("denoise",), cfg.vocab_md5, dropout=cfg.dropouts)
    else:
        model = models.from_config(cfg, cfg.vocab_n).to(device)
    drawn = {"epoch": None, "srcs": None}

    def sources(epoch):  # fixed: one draw for every epoch; fresh: a new draw per epoch, replayed on resume
        if corrupt is None:
            if drawn["srcs"] is None:
                drawn["srcs"] = corpus.encode(given)
        elif cfg.noise_draw == "fixed":
            if drawn["srcs"] is None:
                rng = seeded_rng(cfg.seed, 0)
                drawn["srcs"] = corpus.encode([corrupt(t, rng) for t in clean])
        elif drawn["epoch"] != epoch:
            rng = seeded_rng(cfg.seed, epoch)
            drawn["srcs"] = corpus.encode([corrupt(t, rng) for t in clean])
            drawn["epoch"] = epoch
        return drawn["srcs"]

    max_len = generation_limit(cfg, vt)
    summary = fit_stage(run, model, list(model.parameters()), sources, tgts, ce_step(model, sources, tgts, cfg, device),
                        ce_validation(run, model, vs, vt, cfg, device, max_len), cfg, ctx, "val_nll")
    if rank0_only(ctx):
        return None
    t_eval = time.time()
    load_best(run, model)
    outs, hit = generate(model, vs, max_len=max_len, device=device)
    texts = [corpus.tok.decode(o) for o in outs]
    res = {"stage": "denoise", "method": "denoise", "noise": cfg.noise, "n_unlabeled": len(clean), **summary,
           "val_exact_match": sum(a == b for a, b in zip(texts, val_clean)) / len(val_clean),
           "val_input_already_clean": sum(a == b for a, b in zip(val_noisy, val_clean)) / len(val_clean),
           "val_hit_limit": int(sum(hit)), "n_params": models.count_parameters(model)}
    log.info("denoiser: validation exact match %.3f (inputs already clean %.3f)", res["val_exact_match"],
             res["val_input_already_clean"])
    if corrupt is not None and corpus.manifest.get("variant") == "authors":
        # does Π repair the same corruption of programs it never saw -- the released train programs,
        # the outputs f is trained towards -- as well as its own validation pairs?
        train_clean = [e["tgt"] for e in corpus.split("train", cfg.n_valid)]
        rng = seeded_rng(cfg.seed, 999_998)
        noisy = [corrupt(t, rng) for t in train_clean]
        outs, _ = generate(model, corpus.encode(noisy), max_len=max_len, device=device)
        res["train_repair_exact_match"] = sum(corpus.tok.decode(o) == t for o, t in zip(outs, train_clean)) / len(outs)
        res["train_repair_input_already_clean"] = sum(a == b for a, b in zip(noisy, train_clean)) / len(outs)
        log.info("denoiser: exact repairs of the corrupted labeled train programs %.3f (already clean %.3f)",
                 res["train_repair_exact_match"], res["train_repair_input_already_clean"])
    res["eval_s"] = time.time() - t_eval  # decoding the validation (and train repair) programs
    res["wall_s"] = time.time() - t0 + summary["resumed_train_s"]
    run.finish(res)
    ctx.close()
    return res


# ---------------------------------------------------------------- predictors trained with cross entropy

def _train_ce(args, stage, extra_pairs=None):
    """direct / reverse / pretrain / backtranslate: CE training, then evaluation (not for the reverse
    model, which is no program predictor). extra_pairs(cfg, corpus, ctx) -> more (sources, targets)."""
    prepared = prepare(args, stage)
    if prepared is None:
        return _nothing_to_do(args)
    cfg, run, corpus, ctx = prepared
    device = ctx.device
    t0 = time.time()
    reverse = cfg.method == "reverse"
    srcs, tgts, vs, vt = corpus.labeled(cfg, reverse)
    n_real = len(srcs)
    if extra_pairs is not None:
        ps, pt = extra_pairs(cfg, corpus, ctx)
        srcs, tgts = srcs + ps, tgts + pt
    if stage == "pretrain":  # f starts from Π's weights (and architecture), with f's dropout
        f, _ = models.load(cfg.init, device, ("denoise",), cfg.vocab_md5, dropout=cfg.dropouts)
    else:
        f = models.from_config(cfg, cfg.vocab_n).to(device)
    log.info("%s: %d training pairs (%d labeled), %d validation, %d parameters", cfg.stage, len(srcs), n_real,
             len(vs), models.count_parameters(f))
    validate = ce_validation(run, f, vs, vt, cfg, device, generation_limit(cfg, vt))
    sources = lambda epoch: srcs  # noqa: E731  (the labeled pairs are the same every epoch)
    summary = fit_stage(run, f, list(f.parameters()), sources, tgts, ce_step(f, sources, tgts, cfg, device), validate,
                        cfg, ctx, "val_nll")
    if rank0_only(ctx):
        return None
    extra = {"n_train_pairs": len(srcs), "n_labeled": n_real}
    if reverse:
        load_best(run, f)
        res = {"stage": "direct", "method": "reverse", **summary, **extra,
               "wall_s": time.time() - t0 + summary["resumed_train_s"]}
        run.finish(res)
    else:
        res = finish_predictor(run, f, corpus, cfg, device, summary, t0, extra)
    ctx.close()
    return res


def run_direct(args):
    return _train_ce(args, "direct")


def run_pretrain(args):
    return _train_ce(args, "pretrain")


def _pseudo_pairs(cfg, corpus, ctx):
    """Backtranslation: the reverse model's pseudocode for the unlabeled programs, written once to
    RUN/pseudo.src by rank 0 (the others read it)."""
    device = ctx.device
    path = os.path.join(cfg.run_dir, "pseudo.src")
    programs = [e["tgt"] for e in corpus.split("unlabeled", cfg.n_unlabeled)]
    if ctx.is_main and not os.path.exists(path):
        rev, _ = models.load(cfg.reverse_model, device, ("direct",), cfg.vocab_md5)
        t = time.time()
        tgt_ids = corpus.encode(programs)
        longest_src = max(len(s) for s in corpus.encode([e["src"] for e in corpus.split("train")]))
        limit = cfg.max_len or length_limit(longest_src, models.positions(rev) - 2)
        outs, hit = generate(rev, tgt_ids, max_len=limit, mode="sample" if cfg.bt_sampling else "greedy", device=device)
        texts = [corpus.tok.decode(o) or "none" for o in outs]
        write_text(path, "".join(s.replace("\n", " ") + "\n" for s in texts))
        log.info("backtranslation: %d pseudo-sources in %.0f s (%d hit the length limit)", len(texts),
                 time.time() - t, sum(hit))
    ctx.barrier()
    with open(path, encoding="utf-8") as fh:
        texts = fh.read().split("\n")[:-1]
    if len(texts) != len(programs):
        raise UserError(f"{path}: {len(texts)} pseudo-sources for {len(programs)} programs; delete it to relabel")
    return corpus.encode(texts), corpus.encode(programs)


def run_backtranslate(args):
    return _train_ce(args, "backtranslate", extra_pairs=_pseudo_pairs)


# ---------------------------------------------------------------- Composed: f through the frozen Π

def run_compose(args):
    prepared = prepare(args, "compose")
    if prepared is None:
        return _nothing_to_do(args)
    cfg, run, corpus, ctx = prepared
    device = ctx.device
    t0 = time.time()
    f, _ = models.load(cfg.init, device, ("direct", "pretrain", "backtranslate", "compose"), cfg.vocab_md5,
                       dropout=cfg.dropouts)
    pi, _ = models.load_denoiser(cfg.denoiser, device, cfg.vocab_md5)
    if models.positions(pi) < models.positions(f):  # Π reads f's samples, which may be as long as f allows
        raise UserError(f"{cfg.denoiser}: Π holds {models.positions(pi)} positions, fewer than f's "
                        f"{models.positions(f)} ({cfg.init}); train both with the same --max-positions")
    model = Composed(f, pi)  # train() keeps Π in eval mode; Π has requires_grad=False
    srcs, tgts, vs, vt = corpus.labeled(cfg)
    max_len = generation_limit(cfg, corpus.gold_targets(cfg.eval_splits))
    log.info("compose: f from %s (%s), Π from %s, λ=%g, %d pairs", cfg.init, cfg.init_stage, cfg.denoiser,
             cfg.lam, len(srcs))

    cap = min(cfg.sample_max_len, models.positions(f) - 2) if cfg.sample_max_len else 0

    def limit(idx):  # the samples' length limit of a batch: the fixed cap, or the factor x its longest gold
        return cap or length_limit(max(len(tgts[i]) for i in idx), max_len, cfg.sample_len_factor)

    def step(batch):
        xs, ys = [srcs[i] for i in batch.idx], [tgts[i] for i in batch.idx]
        kw = dict(lam=cfg.lam, epsilon=cfg.label_smoothing_at(batch.epoch), clamp_min=cfg.clamp_min,
                  scale=cfg.reinforce_scale, baseline=cfg.reinforce_baseline, device=device,
                  logp_sum=cfg.logp_sum, logp_mode=cfg.logp_mode)
        if not batch.merged:
            return composed_loss(f, pi, xs, ys, max_len=limit(batch.idx), **kw)
        # a GPU's step is a whole update (training.merge_updates): its batches' samples in one decoding pass
        # (in eval mode the samples' log p is recorded as they are drawn: composed_terms's fuse_logp)
        fuse = cfg.logp_mode == "eval"
        samples = sample_update(f, [[srcs[i] for i in p] for p in batch.parts], [limit(p) for p in batch.parts],
                                device, logp=fuse)
        yhats = [o + [EOS] for s in samples for o in s[0]]
        hit = [h for s in samples for h in s[1]]
        lps = [x for s in samples for x in s[2]] if fuse else None
        per, extra = composed_terms(f, pi, xs, ys, max_len=max(limit(p) for p in batch.parts), yhats=yhats,
                                    hit=hit, parts=[len(p) for p in batch.parts], lps=lps, **kw)
        # what update_freq accumulated steps of one batch each would add: each batch over its own tokens
        ntoks = [sum(len(tgts[i]) for i in p) for p in batch.parts]
        return per_batch_mean(per, batch, ntoks, cfg.update_freq), sum(ntoks), extra

    if cfg.reinforce == "off":  # "Pretrained, continued": CE alone, everything else as Composed (config.resolve
        # has refused the options that would do nothing here)
        step = ce_step(f, lambda epoch: srcs, tgts, cfg, device)
    val_len = min(cap or max_len, max_len) if cfg.val_yhat == "sample" else max_len

    def validate():
        # ŷ of the selection: greedy, or sampled as in training (the authors' loss_2); a sample draws from the
        # global RNG, which the checkpoint saves after validation, so a resumed run draws the same
        outs, hit = generate(f, vs, max_len=val_len, mode=cfg.val_yhat, device=device)
        tot, ntok = 0.0, 0
        for idx in token_batches([len(o) + 1 for o in outs], [len(t) for t in vt], eval_tokens(cfg, device),
                                 shuffle=False):
            w = denoiser_nll(pi, [outs[i] + [EOS] for i in idx], [vt[i] for i in idx], device)
            tot += float(w.sum())
            ntok += sum(len(vt[i]) for i in idx)
        return {"val_pi_nll": tot / ntok, "val_nll": validation_nll(f, vs, vt, device, eval_tokens(cfg, device)),
                "val_hit_limit": int(sum(hit)), "val_exact": sum(o + [EOS] == t for o, t in zip(outs, vt)) / len(vt)}

    trainable = [p for p in model.parameters() if p.requires_grad]
    # the checkpoint of the best validation CE is kept too: the control's second selection rule
    summary = fit_stage(run, model, trainable, lambda epoch: srcs, tgts, step, validate, cfg, ctx, "val_pi_nll",
                        also_best=("val_nll",))
    if rank0_only(ctx):
        return None
    res = finish_predictor(run, f, corpus, cfg, device, summary, t0, {"lam": cfg.lam, "init_stage": cfg.init_stage,
                                                                     "reinforce": cfg.reinforce}, trained=model)
    ctx.close()
    return res
