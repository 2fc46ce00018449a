"""The losses of the seq2seq stages: fairseq's label-smoothed cross entropy per sequence and the
validation NLL per target token (the composed objective: reinforce.py)."""
import torch
import torch.nn.functional as F

from composed_ft.code.batching import collate, token_batches


def logits(model, src, src_mask, tgt_in, encoder_outputs=None):
    # Targets are right-padded and the decoder is causal, so no real position ever sees a pad:
    # no decoder mask is needed (pad positions are masked out of every loss).
    out = model(input_ids=None if encoder_outputs is not None else src, attention_mask=src_mask,
                decoder_input_ids=tgt_in, encoder_outputs=encoder_outputs, use_cache=False)
    return out.logits


def label_smoothed_nll(lprobs, target, mask, epsilon):
    """fairseq's label-smoothed cross entropy, summed over the unmasked tokens of each sequence.
    Returns (loss per sequence, nll per sequence)."""
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    nll = nll.masked_fill(~mask, 0.0)
    if epsilon > 0:
        smooth = -lprobs.sum(-1).masked_fill(~mask, 0.0)
        eps_i = epsilon / (lprobs.size(-1) - 1)
        loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    else:
        loss = nll
    return loss.sum(1), nll.sum(1)


def batch_nll(model, b, epsilon=0.0):
    """Per-sequence (label-smoothed loss, nll) of b's targets given b's sources."""
    lp = F.log_softmax(logits(model, b["src"], b["src_mask"], b["tgt_in"]).float(), dim=-1)
    return label_smoothed_nll(lp, b["tgt_out"], b["tgt_mask"], epsilon)


@torch.no_grad()
def validation_nll(model, srcs, tgts, device, max_tokens):
    """NLL per target token of the gold targets (no label smoothing)."""
    tot, ntok = 0.0, 0
    for idx in token_batches([len(s) for s in srcs], [len(t) for t in tgts], max_tokens, shuffle=False):
        b = collate([srcs[i] for i in idx], [tgts[i] for i in idx], device)
        _, nll = batch_nll(model, b, 0.0)
        tot += float(nll.sum())
        ntok += int(b["tgt_mask"].sum())
    return tot / max(ntok, 1)
