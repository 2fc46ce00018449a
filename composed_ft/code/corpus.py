"""What a stage reads of its data set: the tokenizer, the tokenized splits, each example's test cases
and how the judge compares outputs (dataset.py reads and writes the files themselves)."""
import logging
import os

from composed_ft.code.dataset import describe, load_split, require
from composed_ft.code.tokens import Tokenizer
from composed_ft.core.errors import UserError

log = logging.getLogger(__name__)


class Corpus:
    """A data set's splits as a stage sees them (loaded lazily), tokenized with the config's
    vocabulary (config.resolve has built it)."""

    def __init__(self, cfg):
        require(cfg.data)
        self.dir = cfg.data
        self.tok = Tokenizer(cfg.vocab)
        self._cache = {}
        # the manifest (dataset.describe): SPoC's test cases per problem and the judge's -std; SansType's
        # `~` markers and the authors' output comparison
        self.manifest = describe(self.dir)
        self.std = self.manifest.get("judge_std")
        self.compare = self.manifest["compare"]
        self.indent_anywhere = self.manifest["indent_anywhere"]

    def split(self, name, n=0):
        if name not in self._cache:
            self._cache[name] = load_split(self.dir, name)
        return self._cache[name][:n] if n else self._cache[name]

    def encode(self, texts):
        return self.tok.encode_many(texts)

    def tests(self, split, exs):
        """Per example, its test cases [(input, output)]: the example's own (.inp/.out) or, for
        SPoC, every test case of its problem (<split>.probid)."""
        if self.manifest.get("dataset") == "spoc":
            from composed_ft.code import spoc
            path = os.path.join(self.dir, f"{split}.probid")
            if not os.path.exists(path):
                raise UserError(f"{path}: missing (SPoC test splits need the problem id of every program)")
            with open(path) as fh:
                probids = fh.read().split()[: len(exs)]
            return [list(spoc.load_testcases(self.manifest["spoc_dir"], p)) for p in probids]
        if exs and exs[0]["inp"] is None:
            raise UserError(f"{self.dir}/{split}.inp: missing (evaluation needs test inputs and outputs)")
        return [[(e["inp"], e["out"])] for e in exs]

    def gold_targets(self, eval_splits):
        """Token ids of every gold target the generation limit must leave room for."""
        return [t for s in ("train", "val", *eval_splits) for t in self.encode([e["tgt"] for e in self.split(s)])]

    def labeled(self, cfg, reverse=False):
        """(sources, targets, validation sources, validation targets) as token ids: the first
        --n-train / --n-valid pairs that the model's positions hold (reverse: code -> pseudocode)."""
        tr, va = self.split("train", cfg.n_train), self.split("val", cfg.n_valid)
        a, b = ("tgt", "src") if reverse else ("src", "tgt")
        srcs, tgts = within_positions(self.encode([e[a] for e in tr]), self.encode([e[b] for e in tr]), "train",
                                      cfg.max_positions)
        vs, vt = within_positions(self.encode([e[a] for e in va]), self.encode([e[b] for e in va]), "validation",
                                  cfg.max_positions)
        return srcs, tgts, vs, vt


def within_positions(srcs, tgts, what, positions):
    """Drop pairs the model cannot hold (a side longer than its learned positions, less BOS/EOS)."""
    keep = [i for i, (s, t) in enumerate(zip(srcs, tgts)) if max(len(s), len(t)) <= positions - 2]
    if len(keep) < len(srcs):
        log.info("%s: %d of %d pairs longer than %d tokens dropped", what, len(srcs) - len(keep), len(srcs),
                 positions - 2)
    return [srcs[i] for i in keep], [tgts[i] for i in keep]
