"""The method: the paper's two composed objectives, as pure functions of tensors (PAPER.md, "The method
in one paragraph"). The denoiser Π is frozen; only the base predictor f is trained, through Π.

Images (imggen, Experiment 1): Π(f(x)) is differentiable, so f is trained on the composed output directly,
with an explicit L2 penalty on f's non-bias weights:

    L(f) = mean over pixels (Π(f(x)) − y)²  +  λ · Σ_W ‖W‖²                          composed_mse

Programs (SansType and SPoC, Experiments 2 and 3): Π(f(x)) is not differentiable (f's output is a token
sequence), so the gradient goes through the score-function (REINFORCE) estimator. For one example (x, y)
and one sample ŷ ~ f(·|x):

    loss(x, y) = λ·CE(f(x), y)  +  clamp(log p_f(ŷ|x), min=−50) · w / 10,   w = NLL_Π(y | ŷ)   program_loss

w, how badly the frozen Π recovers the gold program from f's sample, is a constant (no gradient), so the
second term's gradient is w · ∇ log p_f(ŷ|x) / 10, zero where log p_f(ŷ|x) < −50 (the clamp is flat there).
Minimizing it lowers the probability of samples in proportion to how badly Π recovers y from them.

log p_f(ŷ|x) has two versions (sample_logp):
  - `masked`, the paper's equation: the sum over the sample's own tokens;
  - `padded`, what the authors' code computes (PAPER.md, "What the authors' code computes"): the sum over
    every position of the sample batch padded to its longest sample, PAD after EOS included. A model
    trained with CE puts log p(PAD) far below zero, so a sample shorter than its batch's longest mostly
    falls below the clamp, where its term has no gradient.
(The other difference, log p computed without dropout, is how f is run: composed_ft/code/reinforce.py.)

Beyond the paper, a baseline b_i may be subtracted from each weight (baseline_weights); the estimator
stays unbiased as long as b_i does not depend on ŷ_i.

Normalization, batching and gradient accumulation are the training loop's (composed_ft/code/stages.py,
composed_ft/core/trainer.py): these functions return per-example values."""
import torch
import torch.nn.functional as F

from composed_ft.core.compose import l2_penalty

# ---------------------------------------------------------------- images: differentiable through Π


def composed_mse(composed_out, target, penalized=(), lam=0.0):
    """(loss, mse): the mean squared error of Π(f(x)) against y, plus λ·Σ‖W‖² over f's `penalized` weights
    (none when λ = 0)."""
    mse = F.mse_loss(composed_out, target)
    return (mse + lam * l2_penalty(list(penalized)) if lam > 0 else mse), mse


# ---------------------------------------------------------------- programs: the score-function estimator

LOGP_SUMS = ("masked", "padded")
BASELINES = ("none", "greedy", "loo")


def sample_logp(tok_lp, lens, parts, logp_sum="masked"):
    """log p_f(ŷ|x) per sample, and what each sum makes of it.

    tok_lp: (n, L) log p of the token at each position from a teacher-forced pass, the samples padded
    with PAD (L ≥ the longest sample); lens: each sample's length (its tokens incl. EOS); parts: the sizes
    of the batches the samples were drawn in, in order (padded sums extend to each batch's longest).
    Returns (the log p `logp_sum` asks for, diagnostics: both sums, each sample's batch-longest length, the
    log p of every post-EOS PAD position)."""
    n, L = tok_lp.shape
    lens_t = torch.as_tensor(lens, device=tok_lp.device)
    longest = torch.cat([lens_t[a:a + k].max().expand(k) for a, k in zip(part_starts(parts), parts)])
    pos = torch.arange(L, device=tok_lp.device)
    own = pos < lens_t[:, None]
    in_batch = pos < longest[:, None]
    zero = tok_lp.new_zeros(())
    masked = torch.where(own, tok_lp, zero).sum(1)
    padded = torch.where(in_batch, tok_lp, zero).sum(1)
    diag = {"masked": masked.detach(), "padded": padded.detach(), "longest": longest,
            "pad_logp": tok_lp.detach()[in_batch & ~own]}
    if logp_sum == "masked":
        return masked, diag
    if logp_sum == "padded":
        return padded, diag
    raise ValueError(f"unknown log p sum {logp_sum!r} (choose from {', '.join(LOGP_SUMS)})")


def part_starts(parts):
    """The first index of each of consecutive batches of the given sizes."""
    k, out = 0, []
    for n in parts:
        out.append(k)
        k += n
    return out


def baseline_weights(weight, baseline="none", greedy_weight=None):
    """The REINFORCE weights of one batch: w itself (the paper), w minus NLL_Π of f's greedy output
    ("greedy", self-critical: a sample is raised exactly when Π recovers y better from it than from f's
    greedy output), or w minus the leave-one-out batch mean ("loo": cheap, but the examples differ in
    length and difficulty, so its sign mostly says whether an example is harder than its batch mates)."""
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


def program_loss(ce, logp, weight, parts, lam=1.0, clamp_min=-50.0, scale=10.0, baseline="none",
                 greedy_weight=None):
    """λ·CE + the REINFORCE term per example; a baseline is taken within each batch of `parts`."""
    rl = torch.cat([reinforce_term(logp[a:a + k], baseline_weights(
        weight[a:a + k], baseline, None if greedy_weight is None else greedy_weight[a:a + k]), clamp_min, scale)
        for a, k in zip(part_starts(parts), parts)])
    return lam * ce + rl
