"""Batches of token id lists: grouped by length under a token budget, padded, and, under torchrun,
sliced per process.

Sequences: source = BPE ids + EOS; decoder input = BOS + target ids; decoder output = target ids +
EOS (tokens.PAD = 0 pads both).

Training batches are cut from `TokenTable`s: a split's id lists kept on the model's device as one flat
tensor, so that a step pads its rows with a few device gathers instead of copying freshly padded host
tensors (on a GPU each host-to-device copy of pageable memory waits for the device, and the host, not
the GPU, would then set the pace). The rows equal `collate`'s exactly (a test checks it)."""
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


class TokenTable:
    """Id lists on a device: one flat tensor, each list's start and length; `rows` pads a batch of them."""

    def __init__(self, seqs, device):
        self.lens = [len(s) for s in seqs]
        starts, n = [], 0
        for k in self.lens:
            starts.append(n)
            n += k
        self.device = device
        self.flat = torch.tensor([t for s in seqs for t in s] or [PAD], dtype=torch.long, device=device)
        self.starts = torch.tensor(starts, dtype=torch.long, device=device)
        self.len_t = torch.tensor(self.lens, dtype=torch.long, device=device)

    def rows(self, idx, rows, shifted=False):
        """(len(idx), longest) padded ids of lists idx (host ints; `rows`: the same indices as a device
        tensor). shifted: BOS then each list without its last id (the decoder input of a target)."""
        n = max(self.lens[i] for i in idx)
        pos = torch.arange(n, device=self.device)
        at = self.starts[rows].unsqueeze(1) + (pos - 1 if shifted else pos).clamp(min=0)
        out = self.flat[at.clamp(max=self.flat.numel() - 1)]
        out = out.masked_fill(pos >= self.len_t[rows].unsqueeze(1), PAD)
        if shifted:
            out[:, 0] = BOS
        return out

    def collate(self, tgt_table, idx, rows):
        """What `collate` returns for the pairs idx (self holds the sources, tgt_table the targets)."""
        src = self.rows(idx, rows)
        tgt_out = tgt_table.rows(idx, rows)
        return {"src": src, "src_mask": src.ne(PAD).long(), "tgt_in": tgt_table.rows(idx, rows, shifted=True),
                "tgt_out": tgt_out, "tgt_mask": tgt_out.ne(PAD)}


def collate(srcs, tgts, device):
    """srcs, tgts: lists of id lists ending with EOS. Returns a dict of tensors."""
    src = pad(srcs, device=device)
    tgt_out = pad(tgts, device=device)
    tgt_in = pad([[BOS] + t[:-1] for t in tgts], device=device)
    return {"src": src, "src_mask": src.ne(PAD).long(), "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_mask": tgt_out.ne(PAD)}
