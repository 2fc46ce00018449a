"""The Transformer encoder-decoder of the code experiments: building it (two implementations), and
loading it from a run's checkpoint. Its sizes are named in presets.ARCHS (--arch).

`mbart` (every stage's default) is Hugging Face's MBartForConditionalGeneration built from an
MBartConfig (never downloaded): pre-LayerNorm encoder and decoder, one embedding matrix shared by
encoder, decoder and the output projection (tied), learned positions, ReLU feed-forward.

`torch` / `torch-pre` (TorchSeq2Seq) are the same sizes on torch.nn.Transformer, post- or
pre-LayerNorm: the benchmark's baseline and a second implementation to train. Why: the issue's
calibration run ("plain PyTorch", the cpu sizes) reached 24% test accuracy with Direct where our MBart
reaches ~16%. It has the sizes, the tied embedding and output projection, the sqrt(d) token scaling,
fairseq's token init and the position table of the MBart model, and none of MBart's extras (the
LayerNorm on the embeddings, the final-logits bias). It answers the calls that the stages and
decode.py make (`model(input_ids=..., attention_mask=..., decoder_input_ids=...,
encoder_outputs=...).logits`, `get_encoder()`, `config.max_position_embeddings`); decode.py decodes it
without a cache (its incremental decoder reads MBart's weights).

Sequences: source = BPE ids + EOS; decoder input = BOS + target ids; decoder output = target ids +
EOS (tokens.PAD = 0 pads both)."""
import math
import os
import warnings
from types import SimpleNamespace

import torch
from torch import nn

from composed_ft.code.config import MAX_POSITIONS, from_saved
from composed_ft.code.tokens import BOS, EOS, PAD
from composed_ft.core import checkpoint
from composed_ft.core.compose import freeze
from composed_ft.core.errors import UserError

IMPLS = ("mbart", "torch", "torch-pre")


def build_model(vocab_size, layers, d_model, ffn, heads, dropout=0.1, attention_dropout=0.2,
                activation_dropout=0.2, max_positions=MAX_POSITIONS, embed_init="hf", positions="learned",
                impl="mbart", **_):
    """A freshly initialized model (draws from torch's global RNG)."""
    if positions not in ("learned", "sinusoidal"):
        raise ValueError(f"positions must be 'learned' or 'sinusoidal', not {positions!r}")
    if embed_init not in ("hf", "fairseq"):
        raise ValueError(f"embed_init must be 'hf' or 'fairseq', not {embed_init!r}")
    if impl in ("torch", "torch-pre"):
        return TorchSeq2Seq(vocab_size, layers, d_model, ffn, heads, dropout, attention_dropout, activation_dropout,
                            max_positions, norm_first=impl == "torch-pre", positions=positions, embed_init=embed_init)
    if impl != "mbart":
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, not {impl!r}")
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


def from_config(cfg, vocab_size):
    """The model a stage config describes (its sizes, dropout, init, positions, implementation)."""
    return build_model(vocab_size, cfg.layers, cfg.d_model, cfg.ffn, cfg.heads, dropout=cfg.dropout,
                       attention_dropout=cfg.attention_dropout, activation_dropout=cfg.activation_dropout,
                       max_positions=cfg.max_positions, embed_init=cfg.embed_init, positions=cfg.positions,
                       impl=cfg.impl)


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
    copied and repaired after 2 epochs (results/NOTES.md). Not the default: on the tiny copy task of
    tests/code/test_model.py (d_model 64, lr 3e-3) it stops learning."""
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


class TorchSeq2Seq(nn.Module):
    """The MBart model's sizes on torch.nn.Transformer (norm_first: pre-LayerNorm)."""

    def __init__(self, vocab_size, layers, d_model, ffn, heads, dropout=0.1, attention_dropout=0.0,
                 activation_dropout=0.0, max_positions=MAX_POSITIONS, norm_first=False, positions="learned",
                 embed_init="fairseq"):
        super().__init__()
        self.config = SimpleNamespace(max_position_embeddings=max_positions)
        self.emb = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.pos_src = nn.Embedding(max_positions, d_model)
        self.pos_tgt = nn.Embedding(max_positions, d_model)
        self.drop = nn.Dropout(dropout)
        with warnings.catch_warnings():  # "enable_nested_tensor is True, but ... norm_first": turned off below
            warnings.simplefilter("ignore", UserWarning)
            self.tf = nn.Transformer(d_model, heads, layers, layers, ffn, dropout, batch_first=True,
                                     norm_first=norm_first)
        self.scale = math.sqrt(d_model)
        # nn.TransformerEncoder's eval fast path packs padded batches into (prototype) nested tensors
        self.tf.encoder.enable_nested_tensor = self.tf.encoder.use_nested_tensor = False
        # nn.Transformer uses one rate for residual, attention and FFN dropout; give each its own
        for layer in list(self.tf.encoder.layers) + list(self.tf.decoder.layers):
            layer.dropout.p = activation_dropout  # between the two FFN matrices
            for attn in (layer.self_attn, getattr(layer, "multihead_attn", None)):
                if attn is not None:
                    attn.dropout = attention_dropout
        with torch.no_grad():  # as the MBart model: hf N(0, 0.02); fairseq unit-scale tokens after sqrt(d)
            self.emb.weight.normal_(0.0, 0.02 if embed_init == "hf" else d_model ** -0.5)
            self.emb.weight[PAD].zero_()
            for pos in (self.pos_src, self.pos_tgt):
                if embed_init == "fairseq" or positions == "sinusoidal":
                    pos.weight.copy_(sinusoidal_positions(max_positions, d_model))
                else:
                    pos.weight.normal_(0.0, 0.02)
                pos.weight.requires_grad_(positions != "sinusoidal")

    def _embed(self, ids, pos):
        return self.drop(self.emb(ids) * self.scale + pos(torch.arange(ids.size(1), device=ids.device)))

    def get_encoder(self):
        def encode(input_ids, attention_mask=None):
            if attention_mask is None:
                attention_mask = input_ids.ne(PAD)
            h = self.tf.encoder(self._embed(input_ids, self.pos_src), src_key_padding_mask=~attention_mask.bool())
            return SimpleNamespace(last_hidden_state=h)
        return encode

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, encoder_outputs=None,
                use_cache=False, **_):
        if attention_mask is None:
            attention_mask = input_ids.ne(PAD)
        if encoder_outputs is None:
            encoder_outputs = self.get_encoder()(input_ids, attention_mask)
        t = decoder_input_ids.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=decoder_input_ids.device)
        h = self.tf.decoder(self._embed(decoder_input_ids, self.pos_tgt), encoder_outputs.last_hidden_state,
                            tgt_mask=causal, tgt_is_causal=True,
                            memory_key_padding_mask=~attention_mask.bool())
        return SimpleNamespace(logits=h @ self.emb.weight.t())


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


# ---------------------------------------------------------------- from run directories

def load(path, device, expect_stages=None, vocab_md5=None, dropout=None):
    """(model, config) of a run directory's best checkpoint (or a checkpoint file): the model its config
    describes, with the checkpoint's weights; `dropout` (three rates) replaces the trained model's."""
    ckpt_path = os.path.join(path, "checkpoint_best.pt") if os.path.isdir(path) else path
    ckpt = checkpoint.load(ckpt_path)
    cfg = from_saved(ckpt.get("config") or {})
    if expect_stages and cfg.stage not in expect_stages:
        raise UserError(f"{ckpt_path}: a {cfg.stage or None!r} checkpoint, expected {' or '.join(expect_stages)}")
    if vocab_md5 and cfg.vocab_md5 and cfg.vocab_md5 != vocab_md5:
        raise UserError(f"{ckpt_path}: trained with another vocabulary ({cfg.vocab}); models must share one")
    state = ckpt["model"]
    if any(k.startswith("base.") for k in state):  # a composed run: f is `base`, Π is `denoiser`
        state = {k[5:]: v for k, v in state.items() if k.startswith("base.")}
    model = from_config(cfg, cfg.vocab_n)
    if dropout is not None:
        set_dropout(model, *dropout)
    checkpoint.load_model_state(model, state, ckpt_path)
    return model.to(device), cfg


def load_denoiser(path, device, vocab_md5):
    """(Π frozen, its config), or (None, None) without a path."""
    if not path:
        return None, None
    pi, cfg = load(path, device, ("denoise",), vocab_md5)
    return freeze(pi), cfg
