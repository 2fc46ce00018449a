"""The composed objective as the authors' code computes it (issue 36): log p_f(ŷ|x) summed over the
sample batch padded to its longest sample, PAD after EOS included, then clamped; computed in eval mode.
Each test checks reinforce.py against a computation by hand, one example at a time."""
import pytest
import torch
import torch.nn.functional as F

from composed_ft.code import model
from composed_ft.code.presets import ARCHS
from composed_ft.code.reinforce import composed_loss
from composed_ft.code.tokens import BOS, EOS, PAD
from composed_ft.core.compose import freeze
from composed_ft.core.objective import sample_logp

V = 40
SRCS = [[5, 6, 7, 8, EOS], [9, 10, EOS], [11, 12, 13, 14, 15, 16, EOS]]
TGTS = [[7, 8, 9, EOS], [10, 11, EOS], [12, 13, 14, 15, EOS]]
# the longest sample has 5 tokens; the others are 2 and 3 shorter than it
YHATS = [[7, 9, EOS], [10, 11, 12, 13, EOS], [12, 13, 14, EOS]]


def tiny(seed=0, dropout=0.0, pad_bias=None):
    torch.manual_seed(seed)
    m = model.build_model(V, **ARCHS["smoke"], dropout=dropout, attention_dropout=dropout,
                          activation_dropout=dropout)
    if pad_bias is not None:  # what CE training does to PAD's logit: it is never a target
        with torch.no_grad():
            m.final_logits_bias[0, PAD] = pad_bias
    return m


def hand_token_logp(f, src, sample, length):
    """log p of each of the `length` positions of `sample` padded with PAD to `length`, from one row alone.
    The decoder reads BOS, the sample without its EOS, then PADs: the authors' `_get_sample` removes each
    row's EOS from the padded samples and prepends the start symbol, so the input after a sample's last
    token is PAD, as in our padded batch (the rows do not interact)."""
    out = sample + [PAD] * (length - len(sample))
    dec_in = [BOS] + sample[:-1] + [PAD] * (length - len(sample))
    lp = F.log_softmax(f(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([dec_in])).logits[0].float(),
                       dim=-1)
    return lp.gather(-1, torch.tensor(out)[:, None])[:, 0]


def hand_weights(pi):
    with torch.no_grad():
        return [-hand_token_logp(pi, yh, y, len(y)).sum() for y, yh in zip(TGTS, YHATS)]


def test_padded_sum_includes_every_pad_position_and_masked_does_not():
    f, pi = tiny(0, pad_bias=-8.0), freeze(tiny(1))
    longest = max(map(len, YHATS))
    with torch.no_grad():
        padded = [hand_token_logp(f, s, yh, longest).sum() for s, yh in zip(SRCS, YHATS)]
        masked = [hand_token_logp(f, s, yh, len(yh)).sum() for s, yh in zip(SRCS, YHATS)]
        pads = torch.cat([hand_token_logp(f, s, yh, longest)[len(yh):] for s, yh in zip(SRCS, YHATS)])
    ntok = sum(map(len, TGTS))
    ws = hand_weights(pi)
    for logp_sum, expect_logp in (("padded", padded), ("masked", masked)):
        loss, n, extra = composed_loss(f, pi, SRCS, TGTS, lam=0.0, yhats=YHATS, logp_sum=logp_sum,
                                       logp_mode="eval")
        assert n == ntok
        expect = sum(max(lp.item(), -50.0) * w.item() / 10 for lp, w in zip(expect_logp, ws)) / ntok
        assert loss.item() == pytest.approx(expect, rel=1e-4)
        assert extra["logp_sample"] == pytest.approx(float(torch.stack(expect_logp).mean()), rel=1e-4)
    # the diagnostics are the same whichever sum trains
    assert extra["logp_padded"] == pytest.approx(float(torch.stack(padded).mean()), rel=1e-4)
    assert extra["logp_pad_token"] == pytest.approx(float(pads.mean()), rel=1e-4)
    assert pads.numel() == 2 + 0 + 1 and float(pads.max()) < -7  # a PAD position costs about the bias
    assert extra["sample_len"] == pytest.approx(4.0) and extra["sample_len_longest"] == 5.0
    assert extra["sample_len_ratio"] == pytest.approx((3 / 5 + 5 / 5 + 4 / 5) / 3)


def test_clamped_samples_have_zero_gradient_only_the_longest_trains():
    """With log p(PAD) ≈ −40 a sample one token shorter than its batch's longest lands below −50: under
    the padded sum only the longest sample's term has a gradient; under the masked sum every one does."""
    f, pi = tiny(0, pad_bias=-40.0), freeze(tiny(1))
    params = list(f.parameters())
    ntok = sum(map(len, TGTS))
    ws = hand_weights(pi)
    loss, _, extra = composed_loss(f, pi, SRCS, TGTS, lam=0.0, yhats=YHATS, logp_sum="padded", logp_mode="eval")
    assert extra["clamped_padded"] == pytest.approx(2 / 3) and extra["clamped_masked"] == 0.0
    got = torch.autograd.grad(loss, params, allow_unused=True)
    i = 1  # the longest sample: its padded sum is its own log p
    g = torch.autograd.grad(hand_token_logp(f, SRCS[i], YHATS[i], len(YHATS[i])).sum(), params, allow_unused=True)
    for a, b in zip(got, g):
        expect = torch.zeros_like(a if a is not None else b) if b is None else ws[i] / 10 * b / ntok
        torch.testing.assert_close(torch.zeros_like(expect) if a is None else a, expect, atol=1e-7, rtol=1e-4)

    loss_m, _, _ = composed_loss(f, pi, SRCS, TGTS, lam=0.0, yhats=YHATS, logp_sum="masked", logp_mode="eval")
    got_m = torch.autograd.grad(loss_m, params, allow_unused=True)
    expect_m = [torch.zeros_like(p) for p in params]
    for j in range(3):
        gj = torch.autograd.grad(hand_token_logp(f, SRCS[j], YHATS[j], len(YHATS[j])).sum(), params,
                                 allow_unused=True)
        for e, x in zip(expect_m, gj):
            if x is not None:
                e += ws[j] / 10 * x / ntok
    for a, e in zip(got_m, expect_m):
        torch.testing.assert_close(torch.zeros_like(e) if a is None else a, e, atol=1e-7, rtol=1e-4)


def test_eval_mode_log_p_has_no_dropout_and_f_keeps_training():
    f, pi = tiny(0, dropout=0.5), freeze(tiny(1))
    f.train()
    f.eval()
    with torch.no_grad():
        longest = max(map(len, YHATS))
        padded = [hand_token_logp(f, s, yh, longest).sum() for s, yh in zip(SRCS, YHATS)]
    f.train()
    ws = hand_weights(pi)
    expect = sum(max(lp.item(), -50.0) * w.item() / 10 for lp, w in zip(padded, ws)) / sum(map(len, TGTS))
    for seed in (1, 2):  # dropout would draw differently for each seed; eval mode draws nothing
        torch.manual_seed(seed)
        loss, _, _ = composed_loss(f, pi, SRCS, TGTS, lam=0.0, yhats=YHATS, logp_sum="padded", logp_mode="eval")
        assert loss.item() == pytest.approx(expect, rel=1e-5)
        assert f.training
    train_values = set()
    for seed in (1, 2):  # train mode: the log p pass has dropout
        torch.manual_seed(seed)
        loss, _, _ = composed_loss(f, pi, SRCS, TGTS, lam=0.0, yhats=YHATS, logp_sum="padded", logp_mode="train")
        train_values.add(round(loss.item(), 6))
    assert len(train_values) == 2


def test_padded_extent_is_each_batch_of_a_merged_update():
    """A GPU step holds a whole update: the padded sum pads each of its batches to that batch's longest."""
    tok_lp = -torch.arange(1, 13, dtype=torch.float32).reshape(3, 4)  # 3 samples, 4 positions
    lens = [2, 4, 3]
    logp, diag = sample_logp(tok_lp, lens, parts=[2, 1], logp_sum="padded")
    # batch 1 = samples 0, 1 (longest 4); batch 2 = sample 2 alone (longest 3)
    assert logp.tolist() == [-(1 + 2 + 3 + 4), -(5 + 6 + 7 + 8), -(9 + 10 + 11)]
    assert diag["masked"].tolist() == [-(1 + 2), -(5 + 6 + 7 + 8), -(9 + 10 + 11)]
    assert diag["pad_logp"].tolist() == [-3.0, -4.0] and diag["longest"].tolist() == [4, 4, 3]
    with pytest.raises(ValueError, match="log p sum"):
        sample_logp(tok_lp, lens, parts=[3], logp_sum="mean")


@pytest.mark.parametrize("logp_sum", ["padded", "masked"])
def test_skipping_the_graph_of_clamped_samples_gives_the_same_loss_and_gradient(logp_sum):
    """The eval-mode log p pass builds a graph only for the samples above the clamp (issue 38): the loss and
    f's gradient equal those of the full pass, with a clamp that cuts the batch in two, under dropout in the
    CE pass (its random draws are the same in both)."""
    f, pi = tiny(0, dropout=0.1, pad_bias=-6.0), freeze(tiny(1))
    with torch.no_grad():
        lp = [hand_token_logp(f.eval(), s, yh, max(map(len, YHATS))).sum() for s, yh in zip(SRCS, YHATS)]
    f.train()
    clamp = float(sorted(lp)[1]) - 0.5  # one sample below the clamp, two above
    grads = []
    for skip in (False, True):
        torch.manual_seed(3)
        loss, _, extra = composed_loss(f, pi, SRCS, TGTS, lam=1.0, yhats=YHATS, logp_sum=logp_sum,
                                       logp_mode="eval", clamp_min=clamp, skip_clamped=skip)
        f.zero_grad()
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in f.parameters() if p.grad is not None]))
    (l0, g0), (l1, g1) = grads
    assert l1 == pytest.approx(l0, rel=1e-6) and len(g0) == len(g1)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(g0, g1))
    if logp_sum == "padded":
        assert extra["clamped_padded"] == pytest.approx(1 / 3)
