"""The same encoder-decoder on torch.nn.Transformer: the benchmark's baseline and a second
implementation to train (`--impl torch` / `torch-pre`).

Why a second implementation: the issue's calibration run ("plain PyTorch", the cpu sizes) reached
24% test accuracy with Direct where our MBart reaches ~16%. This model has the sizes, the tied
embedding and output projection, the sqrt(d) token scaling, fairseq's token init and the position
table of seq2seq.build_model, and none of MBart's extras (the LayerNorm on the embeddings, the
final-logits bias); `norm_first=False` is nn.Transformer's default post-LayerNorm, `True` MBart's
pre-LayerNorm. It answers MBart's calls that the training stages and decode.py make
(`model(input_ids=..., attention_mask=..., decoder_input_ids=..., encoder_outputs=...).logits`,
`get_encoder()`, `config.max_position_embeddings`); decode.py decodes it without a cache (its
incremental decoder reads MBart's weights). Built by seq2seq.build_model, which checks the options."""
import math
import warnings
from types import SimpleNamespace

import torch
from torch import nn

from composed_ft.code.seq2seq import sinusoidal_positions
from composed_ft.code.tokens import PAD


class TorchSeq2Seq(nn.Module):
    def __init__(self, vocab_size, layers, d_model, ffn, heads, dropout=0.1, attention_dropout=0.0,
                 activation_dropout=0.0, max_positions=1024, norm_first=False, positions="learned",
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
        with torch.no_grad():  # as seq2seq.build_model: hf N(0, 0.02); fairseq unit-scale tokens after sqrt(d)
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
