"""Batched decoding: greedy, sampling, beam search, with a key/value cache. `cache="fast"` (the
default) is our own incremental decoder over MBart's weights (_Incremental, ~3-4x faster per
token on a CPU than transformers' cached step), "static" the same with the GPU's static shapes
(uncaptured: for tests), "hf" transformers' cache, "none" recomputes the whole prefix at every step
(the reference, for tests and benchmarks).

`generate(model, srcs, max_len=...)` takes source id lists (ending with EOS) and returns, in the
input order, the output id lists (EOS removed) and a flag per output that is True when the
output hit the length limit without producing EOS (it is then truncated: callers count these).
Sources are grouped by length into batches of at most `max_tokens` source+output tokens.
Sampling draws from torch's global RNG, so a seeded run samples the same programs and a resumed
run continues the same stream.

On a GPU decoding is bound by the host's launches, not by arithmetic: one step of a few hundred rows
costs about what one of a few dozen costs, and one step of the incremental decoder is ~150 small
kernels. So on CUDA (a CPU decodes as it always has):
  - a chunk holds `CUDA_MAX_TOKENS` source+output tokens (all 500 SansType validation programs in one;
    `CPU_MAX_TOKENS` on a CPU, where rows cost time);
  - the step has static shapes (`_Incremental._static_step`: the position a tensor, self-attention over
    the whole cache under a mask) and is captured once per chunk as a CUDA graph, so a step is one
    replay; a capture that fails falls back to the same step without a graph (logged once), and
    COMPOSED_FT_CUDA_GRAPHS=0 turns graphs off;
  - the loop asks the device whether every row has finished only every `CUDA_DONE_EVERY` steps (each
    question waits for the queued steps; finished rows only add PAD). A CPU asks every step: an extra
    sampling step would draw random numbers and shift everything after it.

`length_limit` is the one rule for how long an output may get: 1.5 x the longest gold sequence + 10
tokens (evaluation, validation, backtranslation; Composed's training samples use their own factor),
at most what the model's positions hold."""
import itertools
import logging
import os

import torch
import torch.nn.functional as F

from composed_ft.code.batching import pad
from composed_ft.code.tokens import BOS, EOS, PAD
from composed_ft.core.precision import no_autocast

log = logging.getLogger(__name__)

CPU_MAX_TOKENS = 20000
# a chunk's self-attention cache holds max_tokens x layers x d_model x 8 bytes (keys and values, float32), the
# cross-attention's at most as much again: 2^19 tokens are 3 GiB each for SansType's paper model (3 layers, d
# 256), 5 GiB for SPoC's (5 layers)
CUDA_MAX_TOKENS = 1 << 19
CUDA_DONE_EVERY = 16


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

    def __init__(self, model, enc_hidden, mask, max_len, static=False):
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
        # the static step attends the whole cache under a mask: its unwritten part must hold no NaN
        self.k = enc_hidden.new_zeros(shape) if static else enc_hidden.new_empty(shape)
        self.v = enc_hidden.new_zeros(shape) if static else enc_hidden.new_empty(shape)
        self.t = 0
        self.static, self.graph = static, None
        if static:  # the step's inputs and output as fixed tensors (what a CUDA graph replays on)
            dev = enc_hidden.device
            self.tok_in = torch.full((b,), BOS, dtype=torch.long, device=dev)
            self.t_in = torch.zeros(1, dtype=torch.long, device=dev)
            self.positions = torch.arange(max_len + 1, device=dev)
            self.logits = enc_hidden.new_zeros(b, self.out_w.shape[0], dtype=torch.float)

    @staticmethod
    def _ln(x, ln):
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)

    def step(self, tok):
        """tok: (B,) the last token of every row -> logits (B, V) of the next one (with a static step,
        a fixed tensor that the next step overwrites)."""
        if self.static:
            self.tok_in.copy_(tok)
            self.t_in.fill_(self.t)
            if self.graph is not None:
                self.graph.replay()
            else:
                self._static_step()
            self.t += 1
            return self.logits
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

    def _static_step(self):
        """step() with shapes that do not change from step to step, reading tok_in and t_in and writing
        logits: the position is a tensor (a gather, a cache write by index_copy_) and self-attention runs
        over the whole cache with the positions after t masked out. The same arithmetic as step() up to
        float rounding (tests/code/test_model.py); what a CUDA graph can capture once per chunk."""
        b, h, hd, t = self.b, self.heads, self.hd, self.t_in
        x = self._ln(self.emb[self.tok_in] * self.scale + self.pos.index_select(0, t), self.ln_emb)
        seen = (self.positions <= t).view(1, 1, 1, -1)
        for i, L in enumerate(self.layers):
            qkv = F.linear(self._ln(x, L["ln1"]), L["qkv_w"], L["qkv_b"]).view(b, 3, h, hd)
            self.k[i].index_copy_(2, t, qkv[:, 1].unsqueeze(2))
            self.v[i].index_copy_(2, t, qkv[:, 2].unsqueeze(2))
            a = F.scaled_dot_product_attention(qkv[:, 0].unsqueeze(2), self.k[i], self.v[i], attn_mask=seen,
                                               scale=1.0)
            x = x + F.linear(a.reshape(b, self.d), L["so_w"], L["so_b"])
            q = F.linear(self._ln(x, L["ln2"]), L["cq_w"], L["cq_b"]).view(b, h, 1, hd)
            a = F.scaled_dot_product_attention(q, L["ck"], L["cv"], attn_mask=self.cross_mask, scale=1.0)
            x = x + F.linear(a.reshape(b, self.d), L["co_w"], L["co_b"])
            x = x + L["fc2"](L["act"](L["fc1"](self._ln(x, L["ln3"]))))
        self.logits.copy_(F.linear(self._ln(x, self.ln_out), self.out_w, self.out_b))

    def capture(self):
        """Record the static step as a CUDA graph: each later step is one replay (a few microseconds of
        host time) instead of ~150 launches from Python. Warmed up on a side stream first, as CUDA graphs
        require; the warm-up writes position 0 of the cache, which the first real step writes again."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._static_step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_step()
        self.graph = graph

    def reorder(self, idx):
        """Beam search: row j continues row idx[j] (of the same source: cross-attention is unchanged)."""
        self.k[:, :, :, :self.t] = self.k[:, idx, :, :self.t]
        self.v[:, :, :, :self.t] = self.v[:, idx, :, :self.t]

    def keep(self, idx):
        """Go on with rows idx only (the others have finished): the caches, cross-attention keys and values
        and the source mask shrink with them, so finished rows cost nothing more."""
        self.k, self.v = self.k[:, idx], self.v[:, idx]
        for L in self.layers:
            L["ck"], L["cv"] = L["ck"][idx], L["cv"][idx]
        self.cross_mask = self.cross_mask[idx]
        self.b = len(idx)


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
        self.fast = None
        if impl == "static" or (impl == "fast" and src.device.type == "cuda" and cuda_graphs_enabled()):
            self.fast = _Incremental(model, enc.last_hidden_state, mask, max_len, static=True)
            if impl == "fast":
                _capture_or_fall_back(self.fast)
        elif impl == "fast":
            self.fast = _Incremental(model, enc.last_hidden_state, mask, max_len)

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

    @property
    def can_keep(self):
        """Whether finished rows can be dropped: not by the static step (a CUDA graph replays fixed shapes;
        there finished rows are masked)."""
        return self.fast is None or not self.fast.static

    def keep(self, idx):
        """Go on with rows idx of the batch only."""
        if self.fast is not None:
            self.fast.keep(idx)
            return
        self.enc.last_hidden_state = self.enc.last_hidden_state[idx]
        self.mask = self.mask[idx]
        if self.past is not None:
            self.past.reorder_cache(idx)


_GRAPHS = {"failed": None}  # the first capture error of this process, after which graphs are not tried again


def cuda_graphs_enabled():
    """CUDA-graph decoding (the default on a GPU): off with COMPOSED_FT_CUDA_GRAPHS=0, or for the rest of
    the process after a capture failed."""
    return os.environ.get("COMPOSED_FT_CUDA_GRAPHS", "1") != "0" and _GRAPHS["failed"] is None


def _capture_or_fall_back(inc):
    """Capture inc's static step; where capturing fails (a torch or driver that cannot), log it once and
    decode with the uncaptured static step, which computes the same."""
    try:
        inc.capture()
    except Exception as e:  # noqa: BLE001 -- any capture failure leaves a correct, slower decoder
        _GRAPHS["failed"] = f"{type(e).__name__}: {e}"
        log.warning("CUDA-graph decoding unavailable (%s); decoding without graphs", _GRAPHS["failed"])
        inc.graph = None


def _search(model, src, mask, max_len, sample, temperature, cache, logp=False, groups=None):
    """Greedy (sample=False) or ancestral sampling for one batch.

    Rows that have finished are dropped from the batch (where the step allows it, _Stepper.can_keep) once
    they are a quarter of it: a batch otherwise decodes every row until its longest is done, and sampled
    rows differ in length most. Sampling draws one uniform number per row of the whole batch at every step
    (inverse-CDF sampling), finished or not, so the draws, and hence the samples, do not depend on which
    rows are still in the batch. A finished row's next input is PAD, as in a teacher-forced pass over the
    padded outputs (its EOS is never an input there).

    logp (sampling at temperature 1): also the log-probability of every position as a teacher-forced pass
    in eval mode over the outputs + EOS, padded with PAD to their group's longest, would give it (to float
    rounding): the drawn token's, then PAD's after EOS, and EOS's after an output that hit the limit (one
    more step). A finished row then stays in the batch until every row of its group (`groups`, one id per
    row; default: one group) has finished, so its PAD positions up to the group's longest are recorded.
    Returns (outs, hit, lps): lps[i] the recorded log p of row i, as many positions as it stayed."""
    step = _Stepper(model, src, mask, max_len, cache)
    b, dev = src.size(0), src.device
    ys = torch.full((b, 1), BOS, dtype=torch.long, device=dev)
    out = torch.full((b, max_len), PAD, dtype=torch.long, device=dev)
    alive = torch.arange(b, device=dev)  # the batch's rows still decoded, as rows of `out`
    done = torch.zeros(b, dtype=torch.bool, device=dev)  # of the rows still decoded
    every = CUDA_DONE_EVERY if dev.type == "cuda" else 1
    if logp:
        rec = torch.zeros(b, max_len + 1, device=dev)
        recorded = torch.zeros(b, dtype=torch.long, device=dev)
        grp = (torch.zeros(b, dtype=torch.long, device=dev) if groups is None
               else torch.as_tensor(groups, dtype=torch.long, device=dev))
        n_groups = int(grp.max()) + 1
    for t in range(max_len + 1 if logp else max_len):
        logit = step(ys)
        if t == max_len:  # logp only: EOS after the outputs that hit the limit, PAD after the others
            tok = torch.full_like(alive, EOS).masked_fill_(done, PAD)
        else:
            if sample:
                u = torch.rand(b, device=dev)[alive]
                cdf = F.softmax(logit / temperature, dim=-1).cumsum(-1)
                tok = torch.searchsorted(cdf, u.unsqueeze(1)).squeeze(1).clamp_(max=cdf.size(-1) - 1)
            else:
                tok = logit.argmax(-1)
            tok = tok.masked_fill(done, PAD)
            out[alive, t] = tok
        if logp:
            rec[alive, t] = F.log_softmax(logit, dim=-1).gather(1, tok.unsqueeze(1)).squeeze(1)
            recorded[alive] = t + 1
            if t == max_len:
                break
        ys = torch.cat([ys, tok.masked_fill(tok.eq(EOS), PAD).unsqueeze(1)], dim=1)
        done |= tok.eq(EOS)
        if (t + 1) % every:
            continue
        n_done = int(done.sum())
        if n_done == len(alive):
            break
        if not step.can_keep:
            continue
        if logp:  # a finished row may leave once its whole group has finished
            pending = torch.zeros(n_groups, dtype=torch.long, device=dev).index_add_(0, grp[alive], (~done).long())
            droppable = done & pending[grp[alive]].eq(0)
            n_done = int(droppable.sum())
        else:
            droppable = done
        if 4 * n_done >= len(alive):
            live = (~droppable).nonzero().squeeze(1)
            step.keep(live)
            alive, ys, done = alive[live], ys[live], done[live]
    outs, hit = [], []
    for row in out.tolist():
        if EOS in row:
            outs.append(row[:row.index(EOS)])
            hit.append(False)
        else:
            outs.append([t for t in row if t != PAD])
            hit.append(True)
    if logp:
        return outs, hit, [rec[i, :n] for i, n in enumerate(recorded.tolist())]
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
             cache="fast", max_tokens=None, device=None, logp=False, groups=None):
    """Decode every source. mode: greedy | sample | beam. Returns (outputs, hit_limit). max_tokens: source
    + output tokens per chunk (default CPU_MAX_TOKENS, CUDA_MAX_TOKENS on CUDA). Runs in float32 (or TF32)
    even inside a step's autocast.

    logp (sampling at temperature 1; the composed objective's eval-mode log p, reinforce.py): returns
    (outputs, hit_limit, lps) with each output's recorded log-probabilities (_search). groups: a group id
    per source (the batch each sample's padded log p extends over); chunks then hold whole groups where one
    fits, so a group's rows are decoded together."""
    if mode not in ("greedy", "sample", "beam"):
        raise ValueError(f"unknown decoding mode {mode!r}")
    if cache not in ("fast", "static", "hf", "none"):
        raise ValueError(f"unknown cache {cache!r} (fast, static, hf, none)")
    if logp and (mode != "sample" or temperature != 1.0):
        raise ValueError("logp is recorded only when sampling at temperature 1 (the model's own distribution)")
    device = device or next(model.parameters()).device
    if max_tokens is None:
        max_tokens = CUDA_MAX_TOKENS if torch.device(device).type == "cuda" else CPU_MAX_TOKENS
    with no_autocast(torch.device(device)):
        return _generate(model, srcs, max_len, mode, beam, temperature, len_penalty, cache, max_tokens, device,
                         logp, groups)


def _chunks(srcs, width, max_len, max_tokens, groups):
    """Index lists of the sources decoded together: sorted by length, at most max_tokens source + output
    tokens each (a single source may exceed it). With groups, when they do not all fit one chunk: sorted by
    group first and cut between groups where a whole group fits (one chunk keeps the length order, and so
    the same draws as without groups)."""
    def fits(n, longest):  # n sources, the longest of them `longest` tokens, in one chunk
        return n * width * (longest + max_len) <= max_tokens

    def longest_of(rows):
        return max(len(srcs[i]) for i in rows)
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    by_group = groups is not None and not fits(len(srcs), longest_of(order))
    if by_group:
        order = sorted(range(len(srcs)), key=lambda i: (groups[i], len(srcs[i])))
    chunks, cur, longest = [], [], 0
    k = 0
    while k < len(order):
        unit = [order[k]]
        if by_group:  # the rest of this group (contiguous in this order), if it fits a chunk on its own
            g = list(itertools.takewhile(lambda i: groups[i] == groups[order[k]], order[k:]))
            if fits(len(g), longest_of(g)):
                unit = g
        lu = longest_of(unit)
        if cur and not fits(len(cur) + len(unit), max(longest, lu)):
            chunks.append(cur)
            cur, longest = [], 0
        cur += unit
        longest = max(longest, lu)
        k += len(unit)
    if cur:
        chunks.append(cur)
    return chunks


def _generate(model, srcs, max_len, mode, beam, temperature, len_penalty, cache, max_tokens, device, logp,
              groups):
    was_training = model.training
    model.eval()
    outs, hits, lps = [None] * len(srcs), [False] * len(srcs), [None] * len(srcs)
    width = beam if mode == "beam" else 1
    for chunk in _chunks(srcs, width, max_len, max_tokens, groups):
        src = pad([srcs[c] for c in chunk], device=device)
        mask = src.ne(PAD).long()
        if mode == "beam":
            o, h = _beam(model, src, mask, max_len, beam, len_penalty, cache)
        elif logp:
            o, h, lp = _search(model, src, mask, max_len, True, temperature, cache, logp=True,
                               groups=None if groups is None else [groups[c] for c in chunk])
            for c, x in zip(chunk, lp):
                lps[c] = x
        else:
            o, h = _search(model, src, mask, max_len, mode == "sample", temperature, cache)
        for c, oo, hh in zip(chunk, o, h):
            outs[c], hits[c] = oo, hh
    model.train(was_training)
    return (outs, hits, lps) if logp else (outs, hits)
