"""Batched decoding: greedy, sampling, beam search, with a key/value cache. `cache="fast"` (the
default) is our own incremental decoder over MBart's weights (_Incremental, ~3-4x faster per
token on a CPU than transformers' cached step), "hf" transformers' cache, "none" recomputes the
whole prefix at every step (the reference, for tests and benchmarks).

`generate(model, srcs, max_len=...)` takes source id lists (ending with EOS) and returns, in the
input order, the output id lists (EOS removed) and a flag per output that is True when the
output hit the length limit without producing EOS (it is then truncated: callers count these).
Sources are grouped by length into batches of at most `max_tokens` source+output tokens.
Sampling draws from torch's global RNG, so a seeded run samples the same programs and a resumed
run continues the same stream.

`length_limit` is the one rule for how long an output may get: 1.5 x the longest gold sequence + 10
tokens (evaluation, validation, backtranslation; Composed's training samples use their own factor),
at most what the model's positions hold."""
import torch
import torch.nn.functional as F

from composed_ft.code.batching import pad
from composed_ft.code.tokens import BOS, EOS, PAD


def length_limit(longest, cap, factor=1.5):
    """factor x `longest` (a gold sequence's BPE ids incl. EOS) + 10 tokens, at most `cap`: room for
    every gold-length output, without a silent fixed cap below it."""
    return min(int(factor * longest) + 10, cap)


def _encode(model, src, mask):
    return model.get_encoder()(input_ids=src, attention_mask=mask)


class _Incremental:
    """One decoder step per call, written directly over MBart's decoder weights (pre-LayerNorm
    layers: self-attention, cross-attention, FFN; final LayerNorm; tied output projection).

    Why: transformers' cached step costs ~5 ms of Python and cache bookkeeping per token for the
    cpu-size model, more than its arithmetic; sampling ŷ in every composed step and decoding every
    evaluation example are token-by-token loops, so that overhead was most of their time. Here the
    key/value cache is one preallocated tensor per layer, the cross-attention keys/values are
    projected once, q/k/v are one fused matmul, and attention is torch's fused kernel. The logits
    equal transformers' to float rounding (tests/code/test_model.py). Eval mode only (no
    dropout): generate() puts the model in eval mode."""

    def __init__(self, model, enc_hidden, mask, max_len):
        dec = model.model.decoder
        b, s, d = enc_hidden.shape
        heads = dec.layers[0].self_attn.num_heads
        self.b, self.d, self.heads, self.hd = b, d, heads, d // heads
        self.emb, self.scale = dec.embed_tokens.weight, dec.embed_tokens.embed_scale
        self.pos = dec.embed_positions.weight[dec.embed_positions.offset:]
        self.ln_emb, self.ln_out = dec.layernorm_embedding, dec.layer_norm
        self.out_w, self.out_b = model.lm_head.weight, model.final_logits_bias[0]
        self.cross_mask = mask.bool()[:, None, None, :]  # (B, 1, 1, S), True = attend
        self.layers = []
        for layer in dec.layers:
            sa, ca = layer.self_attn, layer.encoder_attn
            sc = sa.scaling  # folded into the query projection

            def split(x):  # (B, S, d) -> (B, H, S, hd)
                return x.view(b, -1, heads, self.hd).transpose(1, 2)
            self.layers.append(dict(
                ln1=layer.self_attn_layer_norm, ln2=layer.encoder_attn_layer_norm, ln3=layer.final_layer_norm,
                qkv_w=torch.cat([sa.q_proj.weight * sc, sa.k_proj.weight, sa.v_proj.weight]),
                qkv_b=torch.cat([sa.q_proj.bias * sc, sa.k_proj.bias, sa.v_proj.bias]),
                so_w=sa.out_proj.weight, so_b=sa.out_proj.bias,
                cq_w=ca.q_proj.weight * ca.scaling, cq_b=ca.q_proj.bias * ca.scaling,
                ck=split(ca.k_proj(enc_hidden)), cv=split(ca.v_proj(enc_hidden)),
                co_w=ca.out_proj.weight, co_b=ca.out_proj.bias,
                fc1=layer.fc1, fc2=layer.fc2, act=layer.activation_fn))
        shape = (len(self.layers), b, heads, max_len + 1, self.hd)
        self.k = enc_hidden.new_empty(shape)
        self.v = enc_hidden.new_empty(shape)
        self.t = 0

    @staticmethod
    def _ln(x, ln):
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)

    def step(self, tok):
        """tok: (B,) the last token of every row -> logits (B, V) of the next one."""
        b, h, hd, t = self.b, self.heads, self.hd, self.t
        x = self._ln(self.emb[tok] * self.scale + self.pos[t], self.ln_emb)
        for i, L in enumerate(self.layers):
            qkv = F.linear(self._ln(x, L["ln1"]), L["qkv_w"], L["qkv_b"]).view(b, 3, h, hd)
            self.k[i, :, :, t] = qkv[:, 1]
            self.v[i, :, :, t] = qkv[:, 2]
            a = F.scaled_dot_product_attention(qkv[:, 0].unsqueeze(2), self.k[i, :, :, :t + 1],
                                               self.v[i, :, :, :t + 1], scale=1.0)
            x = x + F.linear(a.reshape(b, self.d), L["so_w"], L["so_b"])
            q = F.linear(self._ln(x, L["ln2"]), L["cq_w"], L["cq_b"]).view(b, h, 1, hd)
            a = F.scaled_dot_product_attention(q, L["ck"], L["cv"], attn_mask=self.cross_mask, scale=1.0)
            x = x + F.linear(a.reshape(b, self.d), L["co_w"], L["co_b"])
            x = x + L["fc2"](L["act"](L["fc1"](self._ln(x, L["ln3"]))))
        self.t += 1
        return F.linear(self._ln(x, self.ln_out), self.out_w, self.out_b).float()

    def reorder(self, idx):
        """Beam search: row j continues row idx[j] (of the same source: cross-attention is unchanged)."""
        self.k[:, :, :, :self.t] = self.k[:, idx, :, :self.t]
        self.v[:, :, :, :self.t] = self.v[:, idx, :, :self.t]


class _Stepper:
    """Next-token logits for a batch being decoded: `fast` (_Incremental, the default), `hf`
    (transformers' own cache) or `none` (no cache: the whole prefix recomputed every step, the
    reference the others are tested against). Models other than MBart (model.TorchSeq2Seq) have
    no cache here and are always decoded the `none` way."""

    def __init__(self, model, src, mask, max_len, impl, expand=None):
        if not hasattr(model, "model"):  # not an MBart: no incremental decoder over its weights
            impl = "none"
        enc = _encode(model, src, mask)
        if expand is not None:  # beam search: every source repeated k times
            enc.last_hidden_state = enc.last_hidden_state[expand]
            mask = mask[expand]
        self.model, self.enc, self.mask, self.impl, self.past = model, enc, mask, impl, None
        self.fast = _Incremental(model, enc.last_hidden_state, mask, max_len) if impl == "fast" else None

    def __call__(self, ys):
        if self.fast is not None:
            return self.fast.step(ys[:, -1])
        if self.impl == "hf":
            out = self.model(encoder_outputs=self.enc, attention_mask=self.mask, decoder_input_ids=ys[:, -1:],
                             cache=self.past, use_cache=True)
            self.past = out.cache
        else:
            out = self.model(encoder_outputs=self.enc, attention_mask=self.mask, decoder_input_ids=ys, use_cache=False)
        return out.logits[:, -1].float()

    def reorder(self, idx):
        if self.fast is not None:
            self.fast.reorder(idx)
        elif self.past is not None:
            self.past.reorder_cache(idx)


def _search(model, src, mask, max_len, sample, temperature, cache):
    """Greedy (sample=False) or ancestral sampling for one batch."""
    step = _Stepper(model, src, mask, max_len, cache)
    b = src.size(0)
    ys = torch.full((b, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logit = step(ys)
        if sample:
            tok = torch.multinomial(F.softmax(logit / temperature, dim=-1), 1).squeeze(1)
        else:
            tok = logit.argmax(-1)
        tok = tok.masked_fill(done, PAD)
        ys = torch.cat([ys, tok.unsqueeze(1)], dim=1)
        done |= tok.eq(EOS)
        if bool(done.all()):
            break
    outs, hit = [], []
    for row in ys[:, 1:].tolist():
        if EOS in row:
            outs.append(row[:row.index(EOS)])
            hit.append(False)
        else:
            outs.append([t for t in row if t != PAD])
            hit.append(True)
    return outs, hit


def _beam(model, src, mask, max_len, k, len_penalty, cache):
    """Beam search of width k for one batch; returns the best finished hypothesis per source
    (score = sum of log-probabilities / length**len_penalty, length counting EOS)."""
    b, dev = src.size(0), src.device
    step = _Stepper(model, src, mask, max_len, cache, expand=torch.arange(b, device=dev).repeat_interleave(k))
    ys = torch.full((b * k, 1), BOS, dtype=torch.long, device=dev)
    scores = torch.zeros(b, k, device=dev)
    scores[:, 1:] = -float("inf")  # all beams start identical: keep one
    finished = [[] for _ in range(b)]  # (normalized score, ids, hit_limit)
    for t in range(max_len):
        logit = step(ys)
        lp = F.log_softmax(logit, dim=-1)
        v = lp.size(-1)
        cand = (scores.view(-1, 1) + lp).view(b, k * v)
        top_s, top_i = cand.topk(2 * k, dim=1)
        top_s, top_i = top_s.tolist(), top_i.tolist()
        new_beam, new_tok, new_score = [], [], []
        for i in range(b):
            chosen = 0
            for s, flat in zip(top_s[i], top_i[i]):
                beam, tok = divmod(flat, v)
                if s == -float("inf"):
                    continue
                if tok == EOS:
                    if len(finished[i]) < k:
                        finished[i].append((s / (t + 1) ** len_penalty, ys[i * k + beam, 1:].tolist(), False))
                    continue
                if chosen < k:
                    new_beam.append(i * k + beam)
                    new_tok.append(tok)
                    new_score.append(s)
                    chosen += 1
            while chosen < k:  # fewer than k live candidates: pad with dead beams
                new_beam.append(i * k)
                new_tok.append(PAD)
                new_score.append(-float("inf"))
                chosen += 1
        if all(len(f) >= k for f in finished):
            break
        beam_idx = torch.tensor(new_beam, device=dev)
        ys = torch.cat([ys[beam_idx], torch.tensor(new_tok, device=dev).unsqueeze(1)], dim=1)
        scores = torch.tensor(new_score, device=dev).view(b, k)
        step.reorder(beam_idx)
    else:
        for i in range(b):  # length limit: live hypotheses count, flagged
            for j in range(k):
                s = scores[i, j].item()
                if s > -float("inf") and len(finished[i]) < k:
                    finished[i].append((s / max_len ** len_penalty, ys[i * k + j, 1:].tolist(), True))
    outs, hit = [], []
    for f in finished:
        best = max(f, key=lambda x: x[0]) if f else (0.0, [], True)
        outs.append(best[1])
        hit.append(best[2])
    return outs, hit


@torch.no_grad()
def generate(model, srcs, *, max_len, mode="greedy", beam=5, temperature=1.0, len_penalty=1.0,
             cache="fast", max_tokens=20000, device=None):
    """Decode every source. mode: greedy | sample | beam. Returns (outputs, hit_limit)."""
    if mode not in ("greedy", "sample", "beam"):
        raise ValueError(f"unknown decoding mode {mode!r}")
    if cache not in ("fast", "hf", "none"):
        raise ValueError(f"unknown cache {cache!r} (fast, hf, none)")
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    outs, hits = [None] * len(srcs), [False] * len(srcs)
    width = beam if mode == "beam" else 1
    i = 0
    while i < len(order):
        j, longest = i, 0
        while j < len(order):
            longest = max(longest, len(srcs[order[j]]))
            if j > i and (j - i + 1) * width * (longest + max_len) > max_tokens:
                break
            j += 1
        chunk = order[i:j]
        src = pad([srcs[c] for c in chunk], device=device)
        mask = src.ne(PAD).long()
        if mode == "beam":
            o, h = _beam(model, src, mask, max_len, beam, len_penalty, cache)
        else:
            o, h = _search(model, src, mask, max_len, mode == "sample", temperature, cache)
        for c, oo, hh in zip(chunk, o, h):
            outs[c], hits[c] = oo, hh
        i = j
    model.train(was_training)
    return outs, hits
