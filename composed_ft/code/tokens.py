"""SentencePiece BPE shared by pseudocode and code (one vocabulary, so Π and f compose).

The model is trained on the labeled train split's sources and targets (PAPER.md: vocabulary 600
for SansType), identity normalization (code must round-trip byte for byte) and one thread, so the
same data gives the same model file. The layout tokens `$` (line separator) and `~` (indent) are
not user-defined symbols: as ordinary characters BPE merges them with their leading space into
single pieces (`▁$`, `▁~`), which makes SansType targets ~20% shorter (151 vs 188 pieces).
Ids: 0 pad, 1 unk, 2 bos, 3 eos.
"""
import hashlib
import io
import logging
import os

from composed_ft.core.errors import UserError
from composed_ft.core.io import atomic_path

log = logging.getLogger(__name__)

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def default_path(data_dir, vocab_size):
    return os.path.join(data_dir, f"spm_bpe{vocab_size}.model")


def file_md5(path):
    """The MD5 of a vocabulary file: runs record it, and models trained with another cannot compose."""
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def train_vocab(texts, path, vocab_size=600):
    """Train a BPE model on `texts` and write it atomically to `path` (a .model file)."""
    import sentencepiece as spm
    buf = io.BytesIO()
    # An iterator and a writer instead of files: the model then records no temp paths in its
    # trainer spec, so the same texts give byte-identical files.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_writer=buf, model_type="bpe", vocab_size=vocab_size,
        character_coverage=1.0, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
        normalization_rule_name="identity", num_threads=1, input_sentence_size=0,
        shuffle_input_sentence=False, hard_vocab_limit=False, minloglevel=2)
    with atomic_path(path) as out, open(out, "wb") as dst:
        dst.write(buf.getvalue())
    return path


def ensure_vocab(data_dir, vocab_size=600, path=None):
    """The vocabulary of a data set, trained on its train split if the file does not exist yet."""
    from composed_ft.code.dataset import load_split
    path = path or default_path(data_dir, vocab_size)
    if not os.path.exists(path):
        train = load_split(data_dir, "train")
        texts = [ex["src"] for ex in train if ex["src"]] + [ex["tgt"] for ex in train]
        log.info("training SentencePiece BPE (vocab %d) on %d train sources+targets -> %s",
                 vocab_size, len(texts), path)
        train_vocab(texts, path, vocab_size)
    return Tokenizer(path)


class Tokenizer:
    """encode(text) -> ids ending with EOS; decode(ids) -> text (stops at EOS, drops pad/bos)."""

    def __init__(self, path=None, model_proto=None):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor()
        try:
            if model_proto is not None:
                self.sp.load_from_serialized_proto(model_proto)
            else:
                self.sp.load(path)
        except (OSError, RuntimeError) as e:
            raise UserError(f"{path}: cannot load SentencePiece model ({e})") from None
        self.path = path
        self.pad, self.unk, self.bos, self.eos = PAD, UNK, BOS, EOS

    def __len__(self):
        return self.sp.get_piece_size()

    def proto(self):
        return self.sp.serialized_model_proto()

    def encode(self, text, eos=True):
        ids = self.sp.encode(text, out_type=int)
        return ids + [EOS] if eos else ids

    def encode_many(self, texts, eos=True):
        return [ids + [EOS] if eos else ids for ids in self.sp.encode(list(texts), out_type=int)]

    def decode(self, ids):
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(i)
        return self.sp.decode(out)
