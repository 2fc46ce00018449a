"""Batched decoding with the decoder's key/value cache (transformers' `cache`, formerly
past_key_values): greedy, sampling, beam search.

`generate(model, srcs, max_len=...)` takes source id lists (ending with EOS) and returns, in the
input order, the output id lists (EOS removed) and a flag per output that is True when the
output hit the length limit without producing EOS (it is then truncated: callers count these).
Sources are grouped by length into batches of at most `max_tokens` source+output tokens.
Sampling draws from torch's global RNG, so a seeded run samples the same programs and a resumed
run continues the same stream."""
import torch
import torch.nn.functional as F

from composed_ft.code.seq2seq import pad
from composed_ft.code.tokens import BOS, EOS, PAD


def _encode(model, src, mask):
    return model.get_encoder()(input_ids=src, attention_mask=mask)


def _step(model, enc, mask, ys, past, use_cache):
    if use_cache:
        out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=ys[:, -1:],
                    cache=past, use_cache=True)
        return out.logits[:, -1].float(), out.cache
    out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=ys, use_cache=False)
    return out.logits[:, -1].float(), None


def _search(model, src, mask, max_len, sample, temperature, use_cache):
    """Greedy (sample=False) or ancestral sampling for one batch."""
    enc = _encode(model, src, mask)
    b = src.size(0)
    ys = torch.full((b, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    past = None
    for _ in range(max_len):
        logit, past = _step(model, enc, mask, ys, past, use_cache)
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


def _beam(model, src, mask, max_len, k, len_penalty, use_cache):
    """Beam search of width k for one batch; returns the best finished hypothesis per source
    (score = sum of log-probabilities / length**len_penalty, length counting EOS)."""
    b, dev = src.size(0), src.device
    enc = _encode(model, src, mask)
    idx = torch.arange(b, device=dev).repeat_interleave(k)
    enc.last_hidden_state = enc.last_hidden_state[idx]
    mask = mask[idx]
    ys = torch.full((b * k, 1), BOS, dtype=torch.long, device=dev)
    scores = torch.zeros(b, k, device=dev)
    scores[:, 1:] = -float("inf")  # all beams start identical: keep one
    finished = [[] for _ in range(b)]  # (normalized score, ids, hit_limit)
    past = None
    for t in range(max_len):
        logit, past = _step(model, enc, mask, ys, past, use_cache)
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
        if use_cache:
            past.reorder_cache(beam_idx)
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
             use_cache=True, max_tokens=20000, device=None):
    """Decode every source. mode: greedy | sample | beam. Returns (outputs, hit_limit)."""
    if mode not in ("greedy", "sample", "beam"):
        raise ValueError(f"unknown decoding mode {mode!r}")
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
            o, h = _beam(model, src, mask, max_len, beam, len_penalty, use_cache)
        else:
            o, h = _search(model, src, mask, max_len, mode == "sample", temperature, use_cache)
        for c, oo, hh in zip(chunk, o, h):
            outs[c], hits[c] = oo, hh
        i = j
    model.train(was_training)
    return outs, hits
