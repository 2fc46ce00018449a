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


def _ce_and_logprob(f, srcs, tgts, yhats, epsilon, device):
    """CE(f(x), y) and log p_f(ŷ|x) from one encoder pass and one decoder pass over the 2B
    sequences [y; ŷ] (the encoder runs once: a third less work than two separate passes)."""
    from transformers.modeling_outputs import BaseModelOutput
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
    loss, nll = label_smoothed_nll(lp[:n], tgt_out[:n], tmask[:n], epsilon)
    _, nll_hat = label_smoothed_nll(lp[n:], tgt_out[n:], tmask[n:], 0.0)
    return loss, nll, -nll_hat, sum(len(t) for t in tgts)  # = tmask[:n].sum(): targets hold no PAD


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
                  baseline="none", device=torch.device("cpu"), yhats=None, hit=None, parts=None, update_freq=1):
    """The batch loss and its parts. srcs, tgts: id lists ending with EOS. yhats (optional): the
    samples to use (ending with EOS) instead of drawing them from f here (sample_update, tests), and
    hit: which of them hit the length limit. parts (optional): the sizes of the token batches the
    examples come from, in order (a GPU's step is a whole update, training.merge_updates): the loss is
    then the sum over them of each batch's loss over its own tokens, divided by update_freq, and a
    baseline is taken within each batch, as if each had been a step of its own."""
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
    ce, nll, logp, ntok = _ce_and_logprob(f, srcs, tgts, yhats, epsilon, device)
    if parts is None:
        rl = reinforce_term(logp, baseline_weights(w, baseline, greedy_w), clamp_min, scale)
        loss = (lam * ce + rl).sum() / ntok
        extra = {"ce": float(ce.detach().sum()) / ntok, "nll": float(nll.detach().sum()) / ntok,
                 "pi_nll": float(w.sum()) / ntok, "logp_sample": float(logp.detach().mean()),
                 "sample_hit_limit": sum(hit) / len(hit)}
        return loss, ntok, extra
    bounds, k = [], 0  # (first, end, target tokens) of each batch
    for n in parts:
        bounds.append((k, k + n, sum(len(t) for t in tgts[k:k + n])))
        k += n
    rl = torch.cat([reinforce_term(logp[a:b], baseline_weights(w[a:b], baseline, None if greedy_w is None
                                                               else greedy_w[a:b]), clamp_min, scale)
                    for a, b, _ in bounds])
    per = lam * ce + rl
    loss = sum(per[a:b].sum() / t for a, b, t in bounds) / update_freq

    def mean(x):  # a logged value: each batch's sum over its own tokens, averaged over the batches
        return sum(float(x[a:b].sum()) / t for a, b, t in bounds) / len(bounds)
    extra = {"ce": mean(ce.detach()), "nll": mean(nll.detach()), "pi_nll": mean(w),
             "logp_sample": float(logp.detach().mean()), "sample_hit_limit": sum(hit) / len(hit)}
    return loss, ntok, extra
