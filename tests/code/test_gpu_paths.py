"""What the GPU paths of the seq2seq stages change, checked on a CPU: batches cut on the device equal the
host's, the logged sums that stay on the device equal Python's float sums bit for bit, an update's samples
drawn in one pass are cut to each batch's own limit, and the composed step runs under bf16 autocast
(decoding turns it off)."""
import random
from types import SimpleNamespace

import torch

from composed_ft.code import reinforce
from composed_ft.code.batching import TokenTable, collate
from composed_ft.code.model import build_model
from composed_ft.code.reinforce import composed_loss, composed_terms, sample_update
from composed_ft.code.tokens import EOS
from composed_ft.code.training import Batch, ce_step
from composed_ft.core import precision
from composed_ft.core.trainer import _add, _steady, _value


def _lists(rng, n, lo=1, hi=9):
    return [[rng.randrange(4, 50) for _ in range(rng.randrange(lo, hi))] + [EOS] for _ in range(n)]


def test_token_table_rows_equal_collate():
    rng = random.Random(0)
    srcs, tgts = _lists(rng, 30), _lists(rng, 30, 1, 20)
    st, tt = TokenTable(srcs, torch.device("cpu")), TokenTable(tgts, torch.device("cpu"))
    for idx in ([0], [3, 7, 29], list(range(30)), [29, 0, 5]):
        got = st.collate(tt, idx, torch.tensor(idx))
        want = collate([srcs[i] for i in idx], [tgts[i] for i in idx], torch.device("cpu"))
        assert got.keys() == want.keys()
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k


def test_device_sums_equal_python_float_sums():
    torch.manual_seed(0)
    vals = [torch.randn(()) * 10 ** torch.randint(-8, 8, ()).item() for _ in range(500)]
    sums = {}
    for v in vals:
        _add(sums, "loss", v)
        _add(sums, "frac", float(v) / 3)  # a Python float stays one
    want = 0.0
    for v in vals:
        want += float(v)
    assert _value(sums["loss"]) == want and isinstance(sums["frac"], float)
    assert torch.is_tensor(sums["loss"]) and sums["loss"].dtype == torch.float64


def test_steady_update_time_leaves_out_the_first_updates():
    assert _steady([(1, 10.0), (2, 11.0)], 15.0, 6) == 1.0  # 4 updates after the second
    assert _steady([(1, 10.0), (2, 11.0)], 12.0, 3) == 1.0  # fewer than 4: from the first
    assert _steady([(1, 10.0)], 12.0, 1) is None


def test_sample_update_cuts_each_batch_to_its_limit(monkeypatch):
    calls = []

    def fake_generate(f, srcs, *, max_len, mode, device, logp=False, groups=None):
        assert not logp and groups is None
        calls.append((len(srcs), max_len, mode))
        # row k: EOS after k tokens (k < max_len), else the limit without EOS
        outs = [[5] * min(k, max_len) for k in range(len(srcs))]
        return outs, [k >= max_len for k in range(len(srcs))]

    monkeypatch.setattr(reinforce, "generate", fake_generate)
    groups = [[[1, EOS]] * 4, [[1, EOS]] * 8]
    res = sample_update(None, groups, [3, 6], torch.device("cpu"))
    assert calls == [(12, 6, "sample")]  # one pass over both batches, to the larger limit
    (o1, h1), (o2, h2) = res
    assert [len(x) for x in o1] == [0, 1, 2, 3] and h1 == [False, False, False, True]
    # the second batch is rows 4..11 of the pass: EOS after 4, 5 tokens, the rest at its limit 6
    assert [len(x) for x in o2] == [4, 5, 6, 6, 6, 6, 6, 6] and h2 == [False, False] + [True] * 6
    for outs, hits, limit in ((o1, h1, 3), (o2, h2, 6)):
        assert all(h == (len(o) == limit) for o, h in zip(outs, hits))


def test_precision_is_a_no_op_on_a_cpu():
    cpu = torch.device("cpu")
    precision.setup(cpu, "bf16")
    with precision.autocast(cpu, "bf16"):
        assert not torch.is_autocast_enabled("cpu")
    try:
        precision.setup(cpu, "fp16")
    except ValueError as e:
        assert "bf16" in str(e)
    else:
        raise AssertionError("an unknown precision must be refused")


def test_composed_step_runs_under_bf16_autocast():
    """The CUDA bf16 path's dtypes, exercised with the CPU's autocast: the loss and its backward work,
    and the samples are decoded in float32 (generate turns autocast off)."""
    torch.manual_seed(0)
    f = build_model(60, 1, 32, 64, 2, max_positions=64)
    pi = build_model(60, 1, 32, 64, 2, max_positions=64).requires_grad_(False).eval()
    rng = random.Random(1)
    srcs, tgts = _lists(rng, 6), _lists(rng, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, ntok, extra = composed_loss(f, pi, srcs, tgts, max_len=12)
    loss.backward()
    assert torch.isfinite(loss) and ntok == sum(len(t) for t in tgts)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in f.parameters() if p.grad is not None)
    assert 0.0 <= extra["sample_hit_limit"] <= 1.0


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_merged_update_step_has_the_accumulated_gradient():
    """A GPU's step is a whole update (training.merge_updates): one forward and backward over the update's
    batches gives the gradient that update_freq accumulated steps give (each batch's loss over its own
    tokens, / update_freq), the last, shorter group included."""
    rng = random.Random(2)
    srcs, tgts = _lists(rng, 13), _lists(rng, 13, 1, 15)
    parts = ([0, 1, 2], [3, 4], [5, 6, 7, 8], [9, 10, 11, 12])
    cfg = SimpleNamespace(update_freq=4, label_smoothing_at=lambda epoch: 0.1)
    torch.manual_seed(0)
    m = build_model(60, 2, 32, 64, 2, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                    max_positions=64)
    step = ce_step(m, lambda epoch: srcs, tgts, cfg, torch.device("cpu"))
    for group in (parts, parts[:3]):  # a full update and the epoch's last, shorter one
        m.zero_grad()
        logged = []
        for p in group:
            loss, _, extra = step(Batch(1, p, torch.tensor(p), (p,)))
            (loss / cfg.update_freq).backward()
            logged.append(extra["nll"])
        acc = _grads(m)
        m.zero_grad()
        flat = [i for p in group for i in p]
        loss, ntok, extra = step(Batch(1, flat, torch.tensor(flat), group, True))
        loss.backward()
        assert ntok == sum(len(tgts[i]) for i in flat)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(acc, _grads(m)))
        assert float(extra["nll"]) * cfg.update_freq == __import__("pytest").approx(float(sum(logged)), rel=1e-5)


def test_merged_composed_loss_equals_the_accumulated_one():
    rng = random.Random(3)
    srcs, tgts, yhats = _lists(rng, 7), _lists(rng, 7, 1, 12), _lists(rng, 7, 1, 12)
    torch.manual_seed(0)
    f = build_model(60, 1, 32, 64, 2, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, max_positions=64)
    pi = build_model(60, 1, 32, 64, 2, max_positions=64).requires_grad_(False).eval()
    for baseline in ("none", "loo"):
        f.zero_grad()
        for a, b in ((0, 3), (3, 7)):
            loss, _, _ = composed_loss(f, pi, srcs[a:b], tgts[a:b], yhats=yhats[a:b], baseline=baseline)
            (loss / 4).backward()
        acc = _grads(f)
        f.zero_grad()
        per, extra = composed_terms(f, pi, srcs, tgts, yhats=yhats, baseline=baseline, parts=[3, 4])
        # the training loop's normalization of a merged update (stages.run_compose): each batch over its tokens
        loss = sum(per[a:b].sum() / sum(len(t) for t in tgts[a:b]) for a, b in ((0, 3), (3, 7))) / 4
        loss.backward()
        assert extra["sample_hit_limit"] == 0.0
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(acc, _grads(f))), baseline
