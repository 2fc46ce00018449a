"""The Transformer encoder-decoder of the code experiments, batching by token count, and the losses.

The model is Hugging Face's MBartForConditionalGeneration built from an MBartConfig (never
downloaded): pre-LayerNorm encoder and decoder, one embedding matrix shared by encoder, decoder
and the output projection (tied), learned positions, ReLU feed-forward. PAPER.md's SansType sizes
are the `paper` architecture; `cpu` is small enough for a 2-core CPU; `smoke` is for tests.

Sequences: source = BPE ids + EOS; decoder input = BOS + target ids; decoder output = target ids +
EOS (tokens.PAD = 0 pads both)."""
import math
import random

import torch
import torch.nn.functional as F

from composed_ft.code.tokens import BOS, EOS, PAD

ARCHS = {
    # layers per side, d_model, FFN, heads
    "smoke": dict(layers=1, d_model=32, ffn=64, heads=2),
    "cpu": dict(layers=2, d_model=128, ffn=512, heads=4),
    "paper": dict(layers=3, d_model=256, ffn=1024, heads=2),
    "spoc-paper": dict(layers=5, d_model=256, ffn=1024, heads=8),  # PAPER.md, Experiment 3
}
MAX_POSITIONS = 1024


def build_model(vocab_size, layers, d_model, ffn, heads, dropout=0.1, attention_dropout=0.2,
                activation_dropout=0.2, max_positions=MAX_POSITIONS, embed_init="hf", positions="learned",
                impl="mbart", **_):
    """impl: mbart (the model of every stage) | torch | torch-pre: the same sizes on torch.nn.Transformer,
    post- or pre-LayerNorm (torch_transformer.py; a second implementation to compare with)."""
    if positions not in ("learned", "sinusoidal"):
        raise ValueError(f"positions must be 'learned' or 'sinusoidal', not {positions!r}")
    if embed_init not in ("hf", "fairseq"):
        raise ValueError(f"embed_init must be 'hf' or 'fairseq', not {embed_init!r}")
    if impl in ("torch", "torch-pre"):
        from composed_ft.code.torch_transformer import TorchSeq2Seq
        return TorchSeq2Seq(vocab_size, layers, d_model, ffn, heads, dropout, attention_dropout, activation_dropout,
                            max_positions, norm_first=impl == "torch-pre", positions=positions, embed_init=embed_init)
    if impl != "mbart":
        raise ValueError(f"impl must be 'mbart', 'torch' or 'torch-pre', not {impl!r}")
    from transformers import MBartConfig, MBartForConditionalGeneration
    cfg = MBartConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn, dropout=dropout, attention_dropout=attention_dropout,
        activation_dropout=activation_dropout, activation_function="relu",
        max_position_embeddings=max_positions, scale_embedding=True, tie_word_embeddings=True,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS,
        forced_eos_token_id=None, use_cache=True)
    cfg._attn_implementation = "sdpa"
    model = MBartForConditionalGeneration(cfg)
    if embed_init == "fairseq":
        _fairseq_embeddings(model, d_model)
    if positions == "sinusoidal":
        _sinusoidal_position_tables(model, d_model, freeze=True)
    return model


def sinusoidal_positions(n, d):
    """fairseq's sinusoidal table: sin of position x frequency in the first half, cos in the second."""
    half = d // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000.0) / (half - 1)))
    ang = torch.arange(n, dtype=torch.float)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    return torch.cat([table, torch.zeros(n, d - 2 * half)], dim=1) if d % 2 else table


@torch.no_grad()
def _fairseq_embeddings(model, d_model):
    """fairseq's embedding scales: tokens from N(0, d^-1/2) (about unit scale after the sqrt(d)
    factor) and the learned position tables started from the unit-scale sinusoidal table. Hugging
    Face's default (std 0.02 for both) makes the position signal ten times weaker than the token
    signal at the start; a cpu-size SansType denoiser trained that way for 3 epochs learned a
    language model of the targets that ignores the source (0% exact copies), while this init
    copied and repaired after 2 epochs (code/README.md). Not the default: on the tiny copy task of
    tests/code/test_seq2seq.py (d_model 64, lr 3e-3) it stops learning."""
    emb = model.model.shared
    emb.weight.normal_(0.0, d_model ** -0.5)
    emb.weight[PAD].zero_()
    _sinusoidal_position_tables(model, d_model)


@torch.no_grad()
def _sinusoidal_position_tables(model, d_model, freeze=False):
    """Encoder and decoder position tables set to the sinusoidal table (MBart's tables are offset
    by 2); frozen, they are the original Transformer's fixed positions: positions the training data
    never reaches still carry a meaningful signal, where a learned table keeps its initialization."""
    for side in (model.model.encoder, model.model.decoder):
        pos = side.embed_positions
        pos.weight.copy_(torch.cat([torch.zeros(2, d_model), sinusoidal_positions(pos.weight.shape[0] - 2, d_model)]))
        pos.weight.requires_grad_(not freeze)


def arch_config(args):
    """The architecture part of a run's config (what a checkpoint needs to be rebuilt)."""
    return {k: getattr(args, k) for k in ("layers", "d_model", "ffn", "heads", "dropout",
                                          "attention_dropout", "activation_dropout")}


def set_dropout(model, dropout, attention_dropout, activation_dropout):
    """Change the dropout rates of a built model (Pretrained: Π's weights, f's dropout)."""
    from transformers.models.mbart import modeling_mbart as mm
    if not isinstance(model, mm.MBartForConditionalGeneration):
        raise ValueError("set_dropout: only MBart models (stages initialized from another run use its architecture)")
    model.config.dropout = dropout
    model.config.attention_dropout = attention_dropout
    model.config.activation_dropout = activation_dropout
    for m in model.modules():
        if isinstance(m, (mm.MBartEncoder, mm.MBartDecoder, mm.MBartEncoderLayer, mm.MBartDecoderLayer)):
            m.dropout = dropout
            if hasattr(m, "activation_dropout"):
                m.activation_dropout = activation_dropout
        elif isinstance(m, mm.MBartAttention):
            m.dropout = attention_dropout
    return model


def positions(model):
    """The longest sequence (incl. BOS/EOS) the model's learned position tables hold."""
    return model.config.max_position_embeddings


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- batching

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


# ---------------------------------------------------------------- losses

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


def sequence_logprob(model, src, src_mask, ys, device):
    """Σ_t log p(ys_t | ys_<t, src) per sequence (with gradient); ys: id lists ending with EOS."""
    tgt_out = pad(ys, device=device)
    tgt_in = pad([[BOS] + y[:-1] for y in ys], device=device)
    lp = F.log_softmax(logits(model, src, src_mask, tgt_in).float(), dim=-1)
    _, nll = label_smoothed_nll(lp, tgt_out, tgt_out.ne(PAD), 0.0)
    return -nll


def seeded_rng(*parts):
    """A random.Random seeded from ints (for per-epoch corruptions that replay on resume)."""
    return random.Random(hash(tuple(int(p) for p in parts)) & 0xFFFFFFFF)
