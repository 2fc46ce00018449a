"""The composed fine-tuning objective for discrete outputs (PAPER.md, Experiment 2).

For one example (x, y), with ŷ sampled from the base predictor f(·|x) and Π frozen:

    loss(x, y) = λ·CE(f(x), y) + clamp(log p_f(ŷ|x), min=−50) · NLL_Π(y | ŷ) / 10

NLL_Π(y | ŷ) (how badly the frozen denoiser recovers the gold program from f's sample) is a
constant weight: it is computed without gradient, so the second term's gradient is the
score-function (REINFORCE) estimator  w · ∇ log p_f(ŷ|x) / 10  (zero where log p_f(ŷ|x) < −50,
the clamp's flat region). Minimizing it lowers the probability of samples in proportion to how
badly Π recovers y from them: samples Π can repair are lowered least. Only f receives gradients.

A batch's loss is the sum over its examples divided by the number of gold target tokens
(fairseq's normalization, so the learning rate means the same as for plain CE training).

What the authors' code computes differs from the equation in two ways (PAPER.md, "What the authors'
code computes"), both options here: `logp_sum="padded"` sums log p over every position of the sample
batch padded to its longest sample, PAD after EOS included, before the clamp (a sample shorter than
its batch's longest then mostly lands below −50: no gradient); `logp_mode="eval"` computes log p
without dropout. The paper's row of every preset uses the authors' choice (presets.py); "masked" and
"train" are the equation as written, a named variant.

Beyond the paper, a baseline b_i is subtracted from each weight (the estimator stays unbiased as
long as b_i does not depend on ŷ_i). Without one every weight is positive, so every sample with log p
above the clamp is pushed down; at the cpu preset that spread f's probability mass until its samples
ran to the length limit (code/README.md).
  - `baseline="greedy"` (self-critical): b_i = NLL_Π(y_i | greedy output of f for x_i). A sample
    is raised exactly when Π recovers y better from it than from f's own greedy output. Costs one
    greedy decode and one more forward pass of Π per step.
  - `baseline="loo"`: b_i = mean_{j≠i} w_j over the other examples of the batch. Cheap, but the
    examples differ in length and difficulty, so the sign of w_i − b_i mostly says whether example
    i is harder than its batch mates, not whether its sample is good."""
import torch
import torch.nn.functional as F

from composed_ft.code.batching import collate, pad
from composed_ft.code.decode import generate
from composed_ft.code.losses import batch_nll, label_smoothed_nll
from composed_ft.code.tokens import BOS, EOS, PAD


@torch.no_grad()
def denoiser_nll(pi, yhats, tgts, device):
    """NLL_Π(y | ŷ) per example, summed over y's tokens (incl. EOS). yhats, tgts: id lists ending
    with EOS. Π is evaluated in eval mode without gradient."""
    was = pi.training
    pi.eval()
    _, nll = batch_nll(pi, collate(yhats, tgts, device), 0.0)
    pi.train(was)
    return nll


BASELINES = ("none", "greedy", "loo")


def baseline_weights(weight, baseline="none", greedy_weight=None):
    """The REINFORCE weights: w itself (the paper), w minus NLL_Π of f's greedy output ("greedy"),
    or w minus the leave-one-out batch mean ("loo")."""
    w = weight.detach()
    if baseline == "none":
        return w
    if baseline == "greedy":
        if greedy_weight is None:
            raise ValueError("baseline 'greedy' needs greedy_weight (NLL_Π of y given f's greedy output)")
        return w - greedy_weight.detach()
    if baseline == "loo":
        return w - (w.sum() - w) / (len(w) - 1) if len(w) > 1 else w
    raise ValueError(f"unknown REINFORCE baseline {baseline!r} (choose from {', '.join(BASELINES)})")


def reinforce_term(logp, weight, clamp_min=-50.0, scale=10.0):
    """clamp(log p_f(ŷ|x), min) · w / scale per example, w detached."""
    return logp.clamp(min=clamp_min) * weight.detach() / scale


LOGP_SUMS = ("masked", "padded")
LOGP_MODES = ("train", "eval")


def sample_logp(tok_lp, lens, parts, logp_sum="masked"):
    """log p_f(ŷ|x) per sample from the log-probabilities of a teacher-forced pass, and what the
    authors' choice does to it.

    tok_lp: (n, L) log p of the token at each position, the samples padded with PAD (L ≥ the longest
    sample); lens: each sample's length (its tokens incl. EOS); parts: the sizes of the batches the
    samples were drawn in, in order. `masked` sums each sample's own positions (the paper's log p);
    `padded` sums every position up to the longest sample of its batch, PAD after EOS included (the
    authors' code: fairseq's `Categorical.log_prob` over the padded sample tensor, no mask), so a sample
    k tokens shorter than its batch's longest adds k terms log p(PAD), which a model trained with CE
    puts far below zero. Returns (log p used, diagnostics): the masked and padded sums and, per
    sample, its batch's longest length (the padded sum's extent)."""
    n, L = tok_lp.shape
    lens_t = torch.as_tensor(lens, device=tok_lp.device)
    longest = torch.cat([lens_t[a:a + k].max().expand(k) for a, k in zip(_starts(parts), parts)])
    pos = torch.arange(L, device=tok_lp.device)
    own = pos < lens_t[:, None]
    in_batch = pos < longest[:, None]
    zero = tok_lp.new_zeros(())
    masked = torch.where(own, tok_lp, zero).sum(1)
    padded = torch.where(in_batch, tok_lp, zero).sum(1)
    after_eos = in_batch & ~own
    diag = {"masked": masked.detach(), "padded": padded.detach(), "longest": longest,
            "pad_logp": tok_lp.detach()[after_eos]}
    if logp_sum == "masked":
        return masked, diag
    if logp_sum == "padded":
        return padded, diag
    raise ValueError(f"unknown log p sum {logp_sum!r} (choose from {', '.join(LOGP_SUMS)})")


def _starts(parts):
    k, out = 0, []
    for n in parts:
        out.append(k)
        k += n
    return out


def _ce_and_token_logp(f, srcs, tgts, yhats, epsilon, device, logp_mode="train"):
    """CE(f(x), y) per example and the per-position log p of the samples ŷ, (n, L) padded with PAD.

    train: one encoder pass and one decoder pass over the 2B sequences [y; ŷ], with dropout (the encoder
    runs once: a third less work than two passes). eval (the authors' code): the CE pass with dropout,
    then f's teacher-forced pass over ŷ in eval mode (no dropout), with gradient; f is put back in
    train mode."""
    from transformers.modeling_outputs import BaseModelOutput
    n = len(srcs)
    src = pad(srcs, device=device)
    mask = src.ne(PAD).long()
    if logp_mode == "eval":
        ce, nll = _ce(f, src, mask, tgts, epsilon, device)
        was = f.training
        f.eval()
        try:
            hat_out = pad(yhats, device=device)
            hat_in = pad([[BOS] + t[:-1] for t in yhats], device=device)
            lp = F.log_softmax(f(input_ids=src, attention_mask=mask, decoder_input_ids=hat_in,
                                 use_cache=False).logits.float(), dim=-1)
        finally:
            f.train(was)
        return ce, nll, lp.gather(-1, hat_out.unsqueeze(-1)).squeeze(-1)
    if logp_mode != "train":
        raise ValueError(f"unknown log p mode {logp_mode!r} (choose from {', '.join(LOGP_MODES)})")
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


def _ce(f, src, mask, tgts, epsilon, device):
    tgt_out = pad(tgts, device=device)
    tgt_in = pad([[BOS] + t[:-1] for t in tgts], device=device)
    lp = F.log_softmax(f(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in, use_cache=False)
                       .logits.float(), dim=-1)
    return label_smoothed_nll(lp, tgt_out, tgt_out.ne(PAD), epsilon)


def sample_update(f, src_groups, limits, device):
    """Samples ŷ for every batch of an update at once: [(outputs, hit_limit)] per batch, as
    generate(f, batch, max_len=its limit, mode="sample") would give them in distribution. The batches of
    one update see the same parameters (the optimizer steps after the last), so one sampling pass over
    all their sources draws from the same f; each batch's samples are then cut to its own limit (the
    first `limit` tokens of a longer sample are a sample with that limit: it hit the limit). On a GPU one
    pass of update_freq x the rows costs about what one batch's pass costs (decode.py)."""
    flat = [s for g in src_groups for s in g]
    outs, hit = generate(f, flat, max_len=max(limits), mode="sample", device=device)
    res, k = [], 0
    for g, limit in zip(src_groups, limits):
        o, h = outs[k:k + len(g)], hit[k:k + len(g)]
        k += len(g)
        res.append(([x[:limit] for x in o], [hh or len(x) >= limit for x, hh in zip(o, h)]))
    return res


def composed_loss(f, pi, srcs, tgts, *, lam=1.0, epsilon=0.0, max_len=512, clamp_min=-50.0, scale=10.0,
                  baseline="none", device=torch.device("cpu"), yhats=None, hit=None, parts=None, update_freq=1,
                  logp_sum="masked", logp_mode="train"):
    """The batch loss and its parts. srcs, tgts: id lists ending with EOS. yhats (optional): the
    samples to use (ending with EOS) instead of drawing them from f here (sample_update, tests), and
    hit: which of them hit the length limit. parts (optional): the sizes of the token batches the
    examples come from, in order (a GPU's step is a whole update, training.merge_updates): the loss is
    then the sum over them of each batch's loss over its own tokens, divided by update_freq, and a
    baseline (and a padded log p's extent) is taken within each batch, as if each had been a step of its
    own. logp_sum, logp_mode: how log p_f(ŷ|x) is computed (sample_logp, _ce_and_token_logp)."""
    if yhats is None:
        outs, hit = generate(f, srcs, max_len=max_len, mode="sample", device=device)
        yhats = [o + [EOS] for o in outs]
    elif hit is None:
        hit = [False] * len(yhats)
    w = denoiser_nll(pi, yhats, tgts, device)
    greedy_w = None
    if baseline == "greedy":
        outs_g, _ = generate(f, srcs, max_len=max_len, mode="greedy", device=device)
        greedy_w = denoiser_nll(pi, [o + [EOS] for o in outs_g], tgts, device)
    ce, nll, tok_lp = _ce_and_token_logp(f, srcs, tgts, yhats, epsilon, device, logp_mode)
    merged = parts is not None
    parts = list(parts) if merged else [len(srcs)]
    logp, diag = sample_logp(tok_lp, [len(y) for y in yhats], parts, logp_sum)
    bounds = [(a, a + k, sum(len(t) for t in tgts[a:a + k])) for a, k in zip(_starts(parts), parts)]
    rl = torch.cat([reinforce_term(logp[a:b], baseline_weights(w[a:b], baseline, None if greedy_w is None
                                                               else greedy_w[a:b]), clamp_min, scale)
                    for a, b, _ in bounds])
    per = lam * ce + rl
    ntok = sum(t for _, _, t in bounds)  # = the targets' tokens: they hold no PAD
    if merged:
        loss = sum(per[a:b].sum() / t for a, b, t in bounds) / update_freq
    else:
        loss = per.sum() / ntok

    def mean(x):  # a logged value: each batch's sum over its own tokens, averaged over the batches
        return sum(float(x[a:b].sum()) / t for a, b, t in bounds) / len(bounds)
    return loss, ntok, {"ce": mean(ce.detach()), "nll": mean(nll.detach()), "pi_nll": mean(w),
                        "logp_sample": float(logp.detach().mean()), "sample_hit_limit": sum(hit) / len(hit),
                        **sample_stats(diag, [len(y) for y in yhats], clamp_min)}


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
