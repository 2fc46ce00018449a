"""Fast tests of the seq2seq pieces: vocabulary, batching, the model (both implementations), cached
decoding, the composed REINFORCE objective's gradient, and the frozen denoiser."""
import copy

import pytest
import torch
import torch.nn.functional as F

from composed_ft.code import batching, losses, model
from composed_ft.code.config import MAX_POSITIONS, preset_values
from composed_ft.code.decode import generate
from composed_ft.code.presets import ARCHS
from composed_ft.code.reinforce import composed_loss
from composed_ft.code.tokens import BOS, EOS, PAD, Tokenizer, train_vocab
from composed_ft.core.compose import Composed, freeze

V = 40


def tiny(seed=0, dropout=0.0, impl="mbart"):
    torch.manual_seed(seed)
    return model.build_model(V, **ARCHS["smoke"], dropout=dropout, attention_dropout=dropout,
                               activation_dropout=dropout, impl=impl)


SRCS = [[5, 6, 7, 8, EOS], [9, 10, EOS], [11, 12, 13, 14, 15, 16, EOS]]


def test_vocab_deterministic_and_roundtrip(tmp_path):
    texts = ["int main ( ) { $ ~ int var_1 = 5 ; $ ~ cout << var_1 << endl ; $ }",
             "set var_1 to 5 $ print var_1", 'string var_2 = "ab" ; $ ~ var_2 += "c" ;'] * 20
    a, b = tmp_path / "a.model", tmp_path / "b.model"
    train_vocab(texts, str(a), vocab_size=60)
    train_vocab(texts, str(b), vocab_size=60)
    assert a.read_bytes() == b.read_bytes()
    tok = Tokenizer(str(a))
    for t in texts[:3]:
        ids = tok.encode(t)
        assert ids[-1] == EOS and tok.decode(ids) == t
    assert Tokenizer(model_proto=tok.proto()).encode(texts[0]) == tok.encode(texts[0])


def test_token_batches_respect_max_tokens():
    torch.manual_seed(0)
    sl = torch.randint(3, 40, (200,)).tolist()
    tl = torch.randint(3, 60, (200,)).tolist()
    batches = batching.token_batches(sl, tl, 400)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert len(b) == 1 or len(b) * max(max(sl[i] for i in b), max(tl[i] for i in b)) <= 400


def randomized(seed=0):
    """A tiny model with every parameter random (biases and LayerNorms included: HF initializes
    biases to zero, which would hide a bias bug in the incremental decoder)."""
    m = tiny(seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.dim() == 1 and p.shape[0] == 32 else 0.0))
        m.final_logits_bias.copy_(torch.randn(m.final_logits_bias.shape, generator=g))
    return m


@pytest.mark.parametrize("cache", ["fast", "static", "hf"])
@pytest.mark.parametrize("mode", ["greedy", "beam", "sample"])
def test_decode_with_cache_equals_without(mode, cache):
    for m in (tiny().eval(), randomized()):
        torch.manual_seed(3)
        a = generate(m, SRCS, max_len=25, mode=mode, beam=3, cache=cache)
        torch.manual_seed(3)
        b = generate(m, SRCS, max_len=25, mode=mode, beam=3, cache="none")
        assert a == b


def test_incremental_decoder_logits_equal_transformers():
    """Our one-token step over MBart's weights gives transformers' logits at every position,
    with padded sources (cross-attention mask) and embedding scaling."""
    from composed_ft.code.batching import pad
    from composed_ft.code.decode import _Stepper
    m = randomized(1)
    src = pad(SRCS)
    mask = src.ne(PAD).long()
    ys = torch.tensor([[BOS, 5, 9, 7, 30, 2, 11, 12]] * len(SRCS))
    with torch.no_grad():
        full = m(input_ids=src, attention_mask=mask, decoder_input_ids=ys).logits.float()
        fast = _Stepper(m, src, mask, 10, "fast")
        steps = torch.stack([fast(ys[:, :t + 1]) for t in range(ys.size(1))], dim=1)
        # the GPU's static-shape step (what its CUDA graph captures), run uncaptured; its logits tensor
        # is overwritten by the next step, so each is copied
        static = _Stepper(m, src, mask, 10, "static")
        static_steps = torch.stack([static(ys[:, :t + 1]).clone() for t in range(ys.size(1))], dim=1)
    assert full.abs().max() > 1.0  # a model whose logits are far from uniform
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(static_steps, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["mbart", "torch", "torch-pre"])
def test_greedy_matches_teacher_forced_argmax_and_counts_limit(impl):
    m = tiny(impl=impl).eval()
    outs, hit = generate(m, SRCS, max_len=7)
    for src, o, h in zip(SRCS, outs, hit):
        ys = [BOS]
        with torch.no_grad():
            for _ in range(7):
                logit = m(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([ys])).logits[0, -1]
                ys.append(int(logit.argmax()))
                if ys[-1] == EOS:
                    break
        expect = ys[1:-1] if ys[-1] == EOS else ys[1:]
        assert o == expect
        assert h == (ys[-1] != EOS)  # no EOS within the limit: flagged, never silently dropped


def _independent_logp(model, src, y):
    """log p(y | src) for one example from transformers' own loss (mean CE over y's tokens)."""
    out = model(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([[BOS] + y[:-1]]),
                labels=torch.tensor([y]))
    return -out.loss * len(y)


@pytest.mark.parametrize("baseline", ["none", "greedy", "loo"])
def test_reinforce_gradient_equals_definition(baseline):
    f, pi = tiny(0), freeze(tiny(1))
    f.train()
    tgts = [[7, 8, 9, EOS], [10, 11, EOS], [12, 13, 14, 15, EOS]]
    # the third sample is long: log p < -50, in the clamp's flat region (no gradient)
    yhats = [[7, 9, EOS], [10, 11, 12, 13, EOS], [20] * 30 + [EOS]]
    loss, ntok, _ = composed_loss(f, pi, SRCS, tgts, lam=0.0, yhats=yhats, baseline=baseline, max_len=12)
    assert ntok == sum(len(t) for t in tgts)
    got = torch.autograd.grad(loss, list(f.parameters()), allow_unused=True)

    params = list(f.parameters())
    expect = [torch.zeros_like(p) for p in params]
    with torch.no_grad():  # NLL_Π(y | ŷ), constants
        ws = [-_independent_logp(pi, yh, y) for y, yh in zip(tgts, yhats)]
    if baseline == "loo":  # minus the mean of the other examples' weights (the clamped one's included)
        ws = [w - (sum(ws) - w) / (len(ws) - 1) for w in ws]
    if baseline == "greedy":  # minus NLL_Π(y | f's greedy output), f's greedy output decoded independently
        greedy, _ = generate(f, SRCS, max_len=12, mode="greedy", cache="none")
        with torch.no_grad():
            ws = [w + _independent_logp(pi, g + [EOS], y) for w, g, y in zip(ws, greedy, tgts)]
    assert baseline == "none" or any(w < 0 for w in ws)  # with a baseline some samples are raised
    for src, yh, w in zip(SRCS, yhats, ws):
        logp = _independent_logp(f, src, yh)
        if logp.item() < -50:
            assert yh == yhats[2]
            continue  # d/dθ clamp(logp, -50) = 0 there
        g = torch.autograd.grad(logp, params, allow_unused=True)
        for e, gi in zip(expect, g):
            if gi is not None:
                e += w / 10 * gi / ntok
    for g, e in zip(got, expect):
        g = torch.zeros_like(e) if g is None else g
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-4)


def test_composed_loss_value_with_lambda():
    f, pi = tiny(0), freeze(tiny(1))
    tgts = [[7, 8, 9, EOS], [10, 11, EOS], [12, 13, 14, 15, EOS]]
    yhats = [[7, 9, EOS], [10, 11, 12, 13, EOS], [12, 13, EOS]]
    loss, ntok, extra = composed_loss(f, pi, SRCS, tgts, lam=0.5, yhats=yhats)
    with torch.no_grad():
        total = 0.0
        for src, y, yh in zip(SRCS, tgts, yhats):
            ce = -_independent_logp(f, src, y)
            w = -_independent_logp(pi, yh, y)
            total += 0.5 * ce + max(_independent_logp(f, src, yh).item(), -50) * w / 10
    assert loss.item() == pytest.approx(total.item() / ntok, rel=1e-4)


def test_frozen_denoiser_bit_identical_and_no_gradient():
    f, pi = tiny(0, dropout=0.1), tiny(1, dropout=0.4)
    before = copy.deepcopy(pi.state_dict())
    model = Composed(f, pi)
    model.train()
    assert not pi.training and f.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == len(list(f.parameters()))
    opt = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.1)
    tgts = [[7, 8, 9, EOS], [10, 11, EOS], [12, 13, 14, 15, EOS]]
    torch.manual_seed(0)
    for _ in range(3):
        loss, _, _ = composed_loss(f, pi, SRCS, tgts, max_len=12)
        loss.backward()
        assert all(p.grad is None for p in pi.parameters())
        opt.step()
        opt.zero_grad()
    assert not pi.training
    for k, v in pi.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(a, b) for a, b in zip(f.state_dict().values(), tiny(0).state_dict().values()))


def test_label_smoothing_matches_torch():
    torch.manual_seed(0)
    lp = F.log_softmax(torch.randn(2, 5, V), -1)
    tgt = torch.randint(4, V, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.bool)
    loss, nll = losses.label_smoothed_nll(lp, tgt, mask, 0.0)
    ref = F.nll_loss(lp.reshape(-1, V), tgt.reshape(-1), reduction="none").view(2, 5).sum(1)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(nll, ref)
    mask[1, 3:] = False
    loss, nll = losses.label_smoothed_nll(lp, tgt, mask, 0.1)
    assert (loss > 0).all() and nll[1] < ref[1]


def test_set_dropout_changes_rates():
    m = model.set_dropout(tiny(0, 0.4), 0.1, 0.2, 0.3)
    enc = m.model.encoder
    assert enc.dropout == 0.1 and enc.layers[0].activation_dropout == 0.3
    assert enc.layers[0].self_attn.dropout == 0.2
    assert PAD == m.config.pad_token_id


@pytest.mark.parametrize("impl", ["mbart", "torch-pre"])
def test_learns_to_copy_and_greedy_decodes_it(impl):
    """Training (BOS-shifted teacher forcing) and decoding agree: a tiny model learns a copy task
    and greedy decoding reproduces unseen sequences (both implementations). One thread, 400 Adam steps
    and 50 test sequences with a 90% bar: a matrix product's rounding depends on the threads and the CPU's
    instruction set, and with 250 steps and 20 sequences the count moved between 17 and 18 of 20 from one
    machine to the next; measured here 48-50 of 50 with 1 or 2 threads (chance: ~0)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outs, hit, xs = _train_copy(impl)
    finally:
        torch.set_num_threads(threads)
    assert sum(o == x[:-1] for o, x in zip(outs, xs)) >= 45 and not any(hit)


def _train_copy(impl):
    torch.manual_seed(0)
    m = model.build_model(20, layers=1, d_model=64, ffn=128, heads=4, dropout=0.0, attention_dropout=0.0,
                            activation_dropout=0.0, impl=impl)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def sample(n):
        return [torch.randint(4, 20, (int(torch.randint(3, 7, ())),)).tolist() + [EOS] for _ in range(n)]

    m.train()
    for _ in range(400):
        xs = sample(32)
        b = batching.collate(xs, xs, torch.device("cpu"))
        loss, _ = losses.batch_nll(m, b)
        (loss.sum() / b["tgt_mask"].sum()).backward()
        opt.step()
        opt.zero_grad()
    xs = sample(50)
    outs, hit = generate(m, xs, max_len=12)
    return outs, hit, xs


def test_fairseq_embedding_init_and_cpu_denoiser_preset():
    m = model.build_model(50, layers=1, d_model=64, ffn=128, heads=4, embed_init="fairseq")
    pos = m.model.encoder.embed_positions.weight
    assert torch.allclose(pos[2:], model.sinusoidal_positions(pos.shape[0] - 2, 64))  # offset 2 in MBart
    assert torch.equal(m.model.decoder.embed_positions.weight, pos)
    w = m.model.shared.weight
    assert float(w[1:].std()) == pytest.approx(64 ** -0.5, rel=0.1) and float(w[PAD].abs().sum()) == 0
    h = model.build_model(50, layers=1, d_model=64, ffn=128, heads=4)
    assert float(h.model.shared.weight.std()) == pytest.approx(0.02, rel=0.2)
    with pytest.raises(ValueError):
        model.build_model(50, layers=1, d_model=64, ffn=128, heads=4, embed_init="xavier")
    a = preset_values("denoise", {"preset": "cpu"})
    assert (a["embed_init"], a["dropout"], a["attention_dropout"], a["activation_dropout"]) == \
        ("fairseq", 0.1, 0.0, 0.0)
    a = preset_values("denoise", {"preset": "paper"})
    assert (a["embed_init"], a["dropout"], a["attention_dropout"], a["activation_dropout"]) == ("hf", 0.4, 0.2, 0.2)
    a = preset_values("direct", {"preset": "cpu"})
    assert (a["embed_init"], a["attention_dropout"], a["activation_dropout"], a["lr"]) == ("fairseq", 0.0, 0.0, 2e-3)
    a = preset_values("direct", {"preset": "paper"})
    assert (a["embed_init"], a["attention_dropout"], a["activation_dropout"], a["lr"]) == ("hf", 0.2, 0.2, 2e-3)


def test_fixed_sinusoidal_positions_stay_fixed_through_training():
    torch.manual_seed(0)
    m = model.build_model(V, **ARCHS["smoke"], positions="sinusoidal")
    d = ARCHS["smoke"]["d_model"]
    tables = [side.embed_positions.weight for side in (m.model.encoder, m.model.decoder)]
    for t in tables:
        assert not t.requires_grad
        assert torch.allclose(t[2:], model.sinusoidal_positions(t.shape[0] - 2, d))
    before = [t.clone() for t in tables]
    other = m.model.shared.weight.clone()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    b = batching.collate(SRCS, SRCS, torch.device("cpu"))
    for _ in range(3):
        loss, _ = losses.batch_nll(m, b)
        loss.sum().backward()
        opt.step()
        opt.zero_grad()
    assert all(torch.equal(t, t0) for t, t0 in zip(tables, before))
    assert not torch.equal(m.model.shared.weight, other)  # the rest trains
    # the learned default keeps trainable tables; the flag reaches a stage's config
    assert model.build_model(V, **ARCHS["smoke"]).model.encoder.embed_positions.weight.requires_grad
    assert preset_values("direct", {})["positions"] == "learned"
    assert preset_values("direct", {"positions": "sinusoidal"})["positions"] == "sinusoidal"
    with pytest.raises(ValueError):
        model.build_model(V, **ARCHS["smoke"], positions="rotary")


@pytest.mark.parametrize("impl", ["torch", "torch-pre"])
def test_torch_impl_same_sizes_masks_padding_and_ties_embeddings(impl):
    """The nn.Transformer model: MBart's parameter count less its embedding LayerNorms and the unused
    position offset, outputs independent of padding, one matrix for embeddings and output."""
    m, ref = tiny(impl=impl).eval(), tiny().eval()
    d = ARCHS["smoke"]["d_model"]
    n_mbart = model.count_parameters(ref)
    assert model.count_parameters(m) == n_mbart - 2 * 2 * d - 2 * 2 * d  # 2 embedding LNs, 2 x 2 offset rows
    assert model.positions(m) == MAX_POSITIONS
    with torch.no_grad():
        b = batching.collate(SRCS, SRCS, torch.device("cpu"))
        batched = losses.logits(m, b["src"], b["src_mask"], b["tgt_in"])
        assert batched.shape == (3, b["tgt_in"].size(1), V)
        for i, s in enumerate(SRCS):  # each example alone, no padding: the same logits
            one = batching.collate([s], [s], torch.device("cpu"))
            alone = losses.logits(m, one["src"], one["src_mask"], one["tgt_in"])
            torch.testing.assert_close(batched[i, :len(s)], alone[0], rtol=1e-4, atol=1e-5)
    assert m.emb.weight.grad is None
    loss, _ = losses.batch_nll(m.train(), b)
    loss.sum().backward()
    assert m.emb.weight.grad is not None and float(m.emb.weight.grad.abs().sum()) > 0
    norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.TransformerEncoderLayer)]
    assert norms and all(layer.norm_first == (impl == "torch-pre") for layer in norms)
    with pytest.raises(ValueError):
        model.set_dropout(m, 0.1, 0.0, 0.0)
