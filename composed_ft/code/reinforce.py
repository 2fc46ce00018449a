"""Running the composed objective for discrete outputs (PAPER.md, Experiment 2): sampling ŷ from f, the
frozen Π's NLL of the gold program given ŷ, and f's teacher-forced passes that give CE(f(x), y) and the
log-probabilities of ŷ. The objective itself, λ·CE + clamp(log p_f(ŷ|x), −50) · NLL_Π(y | ŷ) / 10 and its
variants (the authors' padded log p, baselines), is composed_ft/core/objective.py.

How log p_f(ŷ|x) is run (`logp_mode`): with dropout, in the same decoder pass as CE (train, the equation as
written), or in eval mode without dropout (eval, what the authors' code computes: their generator puts f
in eval mode and the teacher-forced pass over the samples runs right after it).

A batch's loss is the sum over its examples divided by the number of gold target tokens (fairseq's
normalization, so the learning rate means the same as for plain CE training): composed_loss for one
batch; composed_terms gives the per-example values the training loop normalizes itself (a GPU step that
holds a whole update, stages.run_compose)."""
import torch
import torch.nn.functional as F

from composed_ft.code.batching import collate, pad
from composed_ft.code.decode import generate
from composed_ft.code.losses import batch_nll, label_smoothed_nll, logits
from composed_ft.code.tokens import BOS, EOS, PAD
from composed_ft.core.objective import part_starts, program_loss, sample_logp

LOGP_MODES = ("train", "eval")
CLAMP_MARGIN = 1.0  # nats: a sample this close below the clamp still gets its (zero) gradient computed


@torch.no_grad()
def denoiser_nll(pi, yhats, tgts, device):
    """NLL_Π(y | ŷ) per example, summed over y's tokens (incl. EOS). yhats, tgts: id lists ending
    with EOS. Π is evaluated in eval mode without gradient."""
    was = pi.training
    pi.eval()
    _, nll = batch_nll(pi, collate(yhats, tgts, device), 0.0)
    pi.train(was)
    return nll


def _ce_and_token_logp(f, srcs, tgts, yhats, epsilon, device, logp_mode="train", live=None, known=None):
    """CE(f(x), y) per example and the per-position log p of the samples ŷ, (n, L) padded with PAD.

    train: one encoder pass and one decoder pass over the 2B sequences [y; ŷ], with dropout (the encoder
    runs once: a third less work than two passes). eval (the authors' code): the CE pass with dropout,
    then f's teacher-forced pass over ŷ in eval mode (no dropout), with gradient; f is put back in
    train mode. live (eval only): a function of the (n, L) log p that says which rows need a gradient; the
    pass then runs without gradient over every row and again, with gradient, over those rows alone.
    known (with live): (lp, complete), the log p the sampler recorded (sampled_logp); the pass without
    gradient then runs only over the rows not complete."""
    from transformers.modeling_outputs import BaseModelOutput
    if logp_mode == "eval":
        ce, nll = batch_nll(f, collate(srcs, tgts, device), epsilon)
        hat = collate(srcs, yhats, device)

        def redo(lp, rows):  # lp with the rows where `rows` holds recomputed by the teacher-forced pass
            rows = rows.nonzero().flatten()
            return lp.index_put((rows,), _token_logp(f, {k: v[rows] for k, v in hat.items()})) if len(rows) else lp
        was = f.training
        f.eval()
        try:
            if live is None:
                lp = _token_logp(f, hat)
            else:
                with torch.no_grad():
                    lp = _token_logp(f, hat) if known is None else redo(known[0], ~known[1])
                lp = redo(lp, live(lp))
        finally:
            f.train(was)
        return ce, nll, lp
    if logp_mode != "train":
        raise ValueError(f"unknown log p mode {logp_mode!r} (choose from {', '.join(LOGP_MODES)})")
    n = len(srcs)
    src = pad(srcs, device=device)
    mask = src.ne(PAD).long()
    hidden = f.get_encoder()(input_ids=src, attention_mask=mask).last_hidden_state
    seqs = list(tgts) + list(yhats)
    tgt_out = pad(seqs, device=device)
    tgt_in = pad([[BOS] + t[:-1] for t in seqs], device=device)
    out = f(encoder_outputs=BaseModelOutput(last_hidden_state=torch.cat([hidden, hidden])),
            attention_mask=torch.cat([mask, mask]), decoder_input_ids=tgt_in, use_cache=False)
    lp = F.log_softmax(out.logits.float(), dim=-1)
    tmask = tgt_out.ne(PAD)
    ce, nll = label_smoothed_nll(lp[:n], tgt_out[:n], tmask[:n], epsilon)
    return ce, nll, lp[n:].gather(-1, tgt_out[n:].unsqueeze(-1)).squeeze(-1)


def _token_logp(f, hat):
    """log p of each target token of a collated batch (tgt_out's ids, PAD positions included), (n, L)."""
    lp = F.log_softmax(logits(f, hat["src"], hat["src_mask"], hat["tgt_in"]).float(), dim=-1)
    return lp.gather(-1, hat["tgt_out"].unsqueeze(-1)).squeeze(-1)


def sample_update(f, src_groups, limits, device, logp=False):
    """Samples ŷ for every batch of an update at once: [(outputs, hit_limit)] per batch, as
    generate(f, batch, max_len=its limit, mode="sample") would give them in distribution. The batches of
    one update see the same parameters (the optimizer steps after the last), so one sampling pass over
    all their sources draws from the same f; each batch's samples are then cut to its own limit (the
    first `limit` tokens of a longer sample are a sample with that limit: it hit the limit). On a GPU one
    pass of update_freq x the rows costs about what one batch's pass costs (decode.py).
    logp: (outputs, hit_limit, recorded log p) per batch (generate's logp, each batch a group); a cut
    sample's record stops at its limit (the position after it is EOS's in ŷ, not the drawn token's)."""
    flat = [s for g in src_groups for s in g]
    groups = [k for k, g in enumerate(src_groups) for _ in g]
    got = generate(f, flat, max_len=max(limits), mode="sample", device=device, logp=logp,
                   groups=groups if logp else None)
    outs, hit = got[0], got[1]
    res, k = [], 0
    for g, limit in zip(src_groups, limits):
        o, h = outs[k:k + len(g)], hit[k:k + len(g)]
        r = ([x[:limit] for x in o], [hh or len(x) >= limit for x, hh in zip(o, h)])
        if logp:
            r += ([lp[:limit] if len(x) > limit else lp for x, lp in zip(o, got[2][k:k + len(g)])],)
        k += len(g)
        res.append(r)
    return res


def sampled_logp(lps, lens, parts, width):
    """The sampler's recorded log p (generate's logp) as _ce_and_token_logp's `known`: an (n, width) tensor,
    zero where nothing was recorded, and whether each row's record covers its batch's longest sample (the
    positions the padded sum reads); the rest are computed by a teacher-forced pass."""
    n = len(lps)
    lp = lps[0].new_zeros(n, width)
    complete = torch.zeros(n, dtype=torch.bool, device=lp.device)
    for a, k in zip(part_starts(parts), parts):
        longest = max(lens[a:a + k])
        for i in range(a, a + k):
            m = min(len(lps[i]), width)
            lp[i, :m] = lps[i][:m]
            complete[i] = len(lps[i]) >= longest
    return lp, complete


def clamp_live(lens, parts, logp_sum, clamp_min):
    """The `live` predicate of _ce_and_token_logp: the samples whose summed log p is at or above the clamp,
    less CLAMP_MARGIN (a margin keeps a sample within rounding of the clamp live); the others' REINFORCE
    term has no gradient."""
    return lambda lp: sample_logp(lp, lens, parts, logp_sum)[0] >= clamp_min - CLAMP_MARGIN


def composed_terms(f, pi, srcs, tgts, *, lam=1.0, epsilon=0.0, max_len=512, clamp_min=-50.0, scale=10.0,
                   baseline="none", device=torch.device("cpu"), yhats=None, hit=None, parts=None,
                   logp_sum="masked", logp_mode="train", skip_clamped=True, fuse_logp=True, lps=None):
    """(per-example loss, logged values) of the examples (srcs, tgts: id lists ending with EOS). yhats
    (optional): the samples to use (ending with EOS) instead of drawing them from f here (sample_update,
    tests), and hit: which of them hit the length limit. parts: the sizes of the token batches the examples
    were drawn in, in order (default: one batch); a baseline and a padded log p's extent are each batch's.
    logp_sum, logp_mode: how log p_f(ŷ|x) is computed (objective.sample_logp, _ce_and_token_logp).
    skip_clamped (eval mode): the samples whose log p lies below the clamp, where their term has no gradient
    (93-97% of them under the authors' padded sum), get no graph and no backward: the same loss and gradient
    up to float rounding (tests/code/test_reinforce.py); a composed step 1.24x faster (results/BENCH.md).
    fuse_logp (with skip_clamped, eval mode): the samples drawn here record their eval-mode log p as they are
    drawn (generate's logp: the same numbers as the teacher-forced pass, to float rounding), so the pass
    without gradient that finds the live samples is not run; lps: such records for given yhats
    (sample_update's)."""
    skip = skip_clamped and logp_mode == "eval"
    if yhats is None:
        if skip and fuse_logp:
            outs, hit, lps = generate(f, srcs, max_len=max_len, mode="sample", device=device, logp=True)
        else:
            outs, hit = generate(f, srcs, max_len=max_len, mode="sample", device=device)
        yhats = [o + [EOS] for o in outs]
    elif hit is None:
        hit = [False] * len(yhats)
    parts = list(parts) if parts is not None else [len(srcs)]
    w = denoiser_nll(pi, yhats, tgts, device)
    greedy_w = None
    if baseline == "greedy":
        outs_g, _ = generate(f, srcs, max_len=max_len, mode="greedy", device=device)
        greedy_w = denoiser_nll(pi, [o + [EOS] for o in outs_g], tgts, device)
    lens = [len(y) for y in yhats]
    live = clamp_live(lens, parts, logp_sum, clamp_min) if skip else None
    known = sampled_logp(lps, lens, parts, max(lens)) if skip and lps is not None else None
    ce, nll, tok_lp = _ce_and_token_logp(f, srcs, tgts, yhats, epsilon, device, logp_mode, live, known)
    logp, diag = sample_logp(tok_lp, lens, parts, logp_sum)
    per = program_loss(ce, logp, w, parts, lam, clamp_min, scale, baseline, greedy_w)
    ntok = sum(len(t) for t in tgts)  # the targets' tokens: they hold no PAD
    return per, {"ce": float(ce.detach().sum()) / ntok, "nll": float(nll.detach().sum()) / ntok,
                 "pi_nll": float(w.sum()) / ntok, "logp_sample": float(logp.detach().mean()),
                 "sample_hit_limit": sum(hit) / len(hit), **sample_stats(diag, lens, clamp_min)}


def composed_loss(f, pi, srcs, tgts, **kw):
    """(loss, target tokens, logged values) of one batch: composed_terms summed over its examples, divided
    by its target tokens."""
    per, extra = composed_terms(f, pi, srcs, tgts, **kw)
    ntok = sum(len(t) for t in tgts)
    return per.sum() / ntok, ntok, extra


def sample_stats(diag, lens, clamp_min):
    """What the authors' padded log p does to a batch (issue 36's measurement), logged per step: the share
    of samples whose clamped log p has no gradient under each sum, the mean log p of a post-EOS PAD
    position (NaN when every sample is as long as its batch's longest), and the samples' lengths against
    their batch's longest."""
    longest = diag["longest"].double()
    lens_t = torch.as_tensor(lens, dtype=torch.float64, device=longest.device)
    pad_lp = diag["pad_logp"]
    return {"clamped_padded": float((diag["padded"] < clamp_min).double().mean()),
            "clamped_masked": float((diag["masked"] < clamp_min).double().mean()),
            "logp_masked": float(diag["masked"].mean()), "logp_padded": float(diag["padded"].mean()),
            "logp_pad_token": float(pad_lp.mean()) if pad_lp.numel() else float("nan"),
            "sample_len": float(lens_t.mean()), "sample_len_longest": float(longest.mean()),
            "sample_len_ratio": float((lens_t / longest).mean())}
