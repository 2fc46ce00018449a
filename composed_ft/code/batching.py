"""Batches of token id lists: grouped by length under a token budget, padded, and, under torchrun,
sliced per process.

Sequences: source = BPE ids + EOS; decoder input = BOS + target ids; decoder output = target ids +
EOS (tokens.PAD = 0 pads both)."""
import torch

from composed_ft.code.tokens import BOS, PAD


def token_batches(src_lens, tgt_lens, max_tokens, shuffle=True, max_sentences=0, generator=None):
    """Index lists whose size in fairseq's sense, n x max(longest source, longest target), stays
    under max_tokens: examples sorted by length (ties broken randomly with the torch RNG, or
    `generator`, when shuffling), cut greedily, then the batch order shuffled."""
    n = len(src_lens)
    if shuffle:
        noise = torch.rand(n, generator=generator).tolist()
        order = sorted(range(n), key=lambda i: (src_lens[i] + tgt_lens[i], noise[i]))
    else:
        order = sorted(range(n), key=lambda i: (src_lens[i] + tgt_lens[i], i))
    batches, cur, ms, mt = [], [], 0, 0
    for i in order:
        s, t = max(ms, src_lens[i]), max(mt, tgt_lens[i])
        if cur and ((len(cur) + 1) * max(s, t) > max_tokens or (max_sentences and len(cur) >= max_sentences)):
            batches.append(cur)
            cur, s, t = [], src_lens[i], tgt_lens[i]
        cur.append(i)
        ms, mt = s, t
    if cur:
        batches.append(cur)
    if shuffle:
        perm = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[j] for j in perm]
    return batches


def epoch_generator(seed, ctx, epoch):
    """Under torchrun every process must draw the same batches: a generator seeded by (seed, epoch)
    instead of the global RNG (which dropout and sampling advance differently on each process)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch) if ctx.enabled else None


def shard(batches, ctx):
    """This process's slice of every global batch (a batch smaller than the number of processes
    is repeated so that every process gets at least one example)."""
    if not ctx.enabled:
        return batches
    return [ctx.shard(b if len(b) >= ctx.world_size else b * ctx.world_size) for b in batches]


def pad(seqs, value=PAD, device=None):
    n = max(len(s) for s in seqs)
    out = torch.full((len(seqs), n), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out.to(device) if device is not None else out


def collate(srcs, tgts, device):
    """srcs, tgts: lists of id lists ending with EOS. Returns a dict of tensors."""
    src = pad(srcs, device=device)
    tgt_out = pad(tgts, device=device)
    tgt_in = pad([[BOS] + t[:-1] for t in tgts], device=device)
    return {"src": src, "src_mask": src.ne(PAD).long(), "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_mask": tgt_out.ne(PAD)}
