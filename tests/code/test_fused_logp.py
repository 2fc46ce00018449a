"""The eval-mode log p of the samples recorded while they are drawn (issue 38): decode.generate(logp=True)
gives, at every position it records, what the teacher-forced eval-mode pass over the padded samples gives;
the composed objective fed with it has the same loss, gradient and logged values as with that pass."""
import pytest
import torch
import torch.nn.functional as F

from composed_ft.code import model
from composed_ft.code.decode import generate
from composed_ft.code.presets import ARCHS
from composed_ft.code.reinforce import composed_loss, composed_terms, sample_update
from composed_ft.code.tokens import BOS, EOS, PAD
from composed_ft.core.compose import freeze

V = 40
SRCS = [[5 + (i % 7), 6, 7 + (i % 3), 8, EOS][: 2 + i % 4] + [EOS] for i in range(14)]
TGTS = [[7 + (i % 5), 8, 9, EOS][: 1 + i % 3] + [EOS] for i in range(14)]


def tiny(seed, eos_bias=2.0):
    """A random model whose samples end at many different lengths (EOS likely), some at the limit."""
    torch.manual_seed(seed)
    m = model.build_model(V, **ARCHS["smoke"], dropout=0.1, attention_dropout=0.1, activation_dropout=0.1)
    with torch.no_grad():
        m.final_logits_bias[0, EOS] = eos_bias
        m.final_logits_bias[0, PAD] = -3.0
    return m


def teacher_forced(f, src, sample, length):
    """Eval-mode log p of each of `length` positions of sample (ending with EOS) padded with PAD, one row."""
    out = sample + [PAD] * (length - len(sample))
    dec_in = [BOS] + sample[:-1] + [PAD] * (length - len(sample))
    with torch.no_grad():
        lp = F.log_softmax(f(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([dec_in])).logits[0],
                           dim=-1)
    return lp.gather(-1, torch.tensor(out)[:, None])[:, 0]


@pytest.mark.parametrize("max_tokens,cache", [(None, "fast"), (60, "fast"), (None, "static"), (None, "none")])
def test_recorded_logp_equals_the_teacher_forced_pass(max_tokens, cache):
    """One chunk or chunks of a few rows; our incremental decoder, its static step (a GPU's: finished rows are
    masked, never dropped) and the full recomputation."""
    f = tiny(0).eval()
    groups = [0] * 5 + [1] * 4 + [2] * 5
    torch.manual_seed(7)
    plain, plain_hit = generate(f, SRCS, max_len=6, mode="sample", cache=cache)
    torch.manual_seed(7)
    outs, hit, lps = generate(f, SRCS, max_len=6, mode="sample", logp=True, groups=groups, max_tokens=max_tokens,
                              cache=cache)
    if max_tokens is None:  # recording draws nothing: the same samples (chunks of whole groups draw in
        assert outs == plain and hit == plain_hit  # another order)
    assert any(hit) and not all(hit) and len({len(o) for o in outs}) >= 3
    yhats = [o + [EOS] for o in outs]
    for g in set(groups):
        rows = [i for i in range(len(SRCS)) if groups[i] == g]
        longest = max(len(yhats[i]) for i in rows)
        for i in rows:
            n = len(lps[i])
            assert n >= len(yhats[i])  # its own tokens, EOS included (after the limit too)
            if max_tokens is None:
                assert n >= longest  # its group's padded positions as well
            expect = teacher_forced(f, SRCS[i], yhats[i], max(n, len(yhats[i])))
            torch.testing.assert_close(lps[i], expect[:n], atol=2e-5, rtol=1e-5)


def test_logp_needs_sampling_at_temperature_one():
    f = tiny(0)
    with pytest.raises(ValueError, match="temperature 1"):
        generate(f, SRCS, max_len=4, mode="sample", temperature=0.7, logp=True)
    with pytest.raises(ValueError, match="temperature 1"):
        generate(f, SRCS, max_len=4, mode="greedy", logp=True)


@pytest.mark.parametrize("logp_sum", ["padded", "masked"])
def test_fused_composed_step_equals_the_teacher_forced_one(logp_sum):
    """Sampling inside composed_loss, fused or not, at the same seed: the same samples, loss, f's gradient
    and logged values, at clamps that leave every sample, some, or none live."""
    f, pi = tiny(0), freeze(tiny(1))
    f.train()
    cut = 0
    for clamp in (-4.0, -8.0, -16.0, -24.0, -30.0, -36.0, -42.0, -80.0):
        results = []
        for fuse in (False, True):
            torch.manual_seed(11)
            loss, _, extra = composed_loss(f, pi, SRCS, TGTS, lam=1.0, max_len=6, logp_sum=logp_sum,
                                           logp_mode="eval", clamp_min=clamp, fuse_logp=fuse)
            f.zero_grad()
            loss.backward()
            results.append((loss.item(), extra, [p.grad.clone() for p in f.parameters() if p.grad is not None]))
        (l0, e0, g0), (l1, e1, g1) = results
        cut += 0 < e0["clamped_" + logp_sum] < 1
        assert l1 == pytest.approx(l0, rel=1e-5) and len(g0) == len(g1)
        assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g0, g1))
        for k, v in e0.items():
            assert e1[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert cut >= 2  # clamps that cut the batch were among them


def test_merged_update_with_recorded_logp_equals_the_teacher_forced_one():
    """A GPU step's update (sample_update over several batches with their own limits; a cut sample's record
    stops at its limit and the rows it leaves short are recomputed) gives the same terms with lps as
    without."""
    f, pi = tiny(0), freeze(tiny(1))
    f.train()
    parts = [SRCS[:5], SRCS[5:9], SRCS[9:]]
    limits = [4, 6, 3]
    torch.manual_seed(5)
    samples = sample_update(f, parts, limits, torch.device("cpu"), logp=True)
    yhats = [o + [EOS] for s in samples for o in s[0]]
    hit = [h for s in samples for h in s[1]]
    lps = [x for s in samples for x in s[2]]
    assert any(len(x) < len(y) for x, y in zip(lps, yhats))  # some records were cut: recomputed
    kw = dict(lam=1.0, max_len=6, yhats=yhats, hit=hit, parts=[len(p) for p in parts], logp_sum="padded",
              logp_mode="eval", clamp_min=-15.0)
    out = []
    for extra_kw in ({}, {"lps": lps}):
        torch.manual_seed(2)
        per, extra = composed_terms(f, pi, SRCS, TGTS, **kw, **extra_kw)
        f.zero_grad()
        per.sum().backward()
        out.append((per.detach(), extra, [p.grad.clone() for p in f.parameters() if p.grad is not None]))
    (p0, e0, g0), (p1, e1, g1) = out
    assert 0 < e0["clamped_padded"] < 1
    torch.testing.assert_close(p1, p0, atol=1e-5, rtol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g0, g1))
    for k, v in e0.items():
        assert e1[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
