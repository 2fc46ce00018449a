"""Labeled / unlabeled splits of the fonts dataset (PAPER.md, Experiment 1).

The labeled domain: `n_labeled_fonts` fonts chosen with `data_seed`, all 62 characters each, i.e.
100 x 62 = 6,200 (font, char) -> image pairs, shuffled and split test / val / train pool
(3,600 / 100 / 2,500 by default). A run with `n_train` < 2,500 takes the first n_train pairs of
the pool; one with more (the 4,500 ablation) takes them from the front of the test set, which then
shrinks to what is left (the table states its size).

The unlabeled outputs (the denoiser's data) are every glyph of every other font (optionally
`n_unlabeled_fonts` of them, chosen with `data_seed`) plus the 2,500 train-pool images; never a
val or test image.

The split depends only on `data_seed`, never on the training `--seed`: the denoiser is trained
once and shared by the predictors of every seed, so a per-seed split would let it see test glyphs.
"""
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import UserError
from .fonts import load_fonts

N_CHARS = 62


@dataclass
class Labeled:
    font: torch.Tensor   # [N] labeled-font index in [0, n_labeled_fonts)
    char: torch.Tensor   # [N] character index in [0, 62)
    image: torch.Tensor  # [N, 1, S, S] float in [-1, 1]

    def __len__(self):
        return len(self.font)

    def to(self, device):
        return Labeled(self.font.to(device), self.char.to(device), self.image.to(device))


def to_float(glyphs_u8):
    """uint8 glyphs (0 background .. 255 ink) -> float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(glyphs_u8)).float().div_(127.5).sub_(1.0)


def split_indices(n_fonts, data_seed=0, n_labeled_fonts=100, n_train=2500, n_val=100, n_test=3600,
                  n_unlabeled_fonts=None):
    """Index arithmetic of the splits, separate from the pixels so it can be tested on its own."""
    if n_fonts < n_labeled_fonts + 1:
        raise UserError(f"the fonts dataset has {n_fonts} fonts; need more than {n_labeled_fonts} "
                        "(labeled) — build it with `python -m composed_ft.imggen build-fonts`")
    rng = np.random.default_rng(data_seed)
    perm_fonts = rng.permutation(n_fonts)
    labeled_fonts = np.sort(perm_fonts[:n_labeled_fonts])
    others = perm_fonts[n_labeled_fonts:]
    if n_unlabeled_fonts is not None:
        if n_unlabeled_fonts > len(others):
            raise UserError(f"--unlabeled-fonts {n_unlabeled_fonts}: only {len(others)} unlabeled fonts exist")
        others = others[:n_unlabeled_fonts]
    pairs = rng.permutation(n_labeled_fonts * N_CHARS)  # pair p -> (font p // 62, char p % 62)
    total = len(pairs)
    pool_start = n_test + n_val
    if pool_start > total:
        raise UserError(f"val+test ({n_val}+{n_test}) exceed the {total} labeled pairs")
    pool = pairs[pool_start:]
    if n_train <= len(pool):
        train, test = pool[:n_train], pairs[:n_test]
    else:
        extra = n_train - len(pool)
        if extra > n_test:
            raise UserError(f"--n-train {n_train}: at most {total - n_val} labeled pairs are available")
        train, test = np.concatenate([pool, pairs[:extra]]), pairs[extra:n_test]
    val = pairs[n_test:pool_start]
    return {"labeled_fonts": labeled_fonts, "unlabeled_fonts": np.sort(others),
            "train": train, "val": val, "test": test, "pool": pool}


def labeled_split(glyphs, labeled_fonts, pairs):
    font = pairs // N_CHARS
    char = pairs % N_CHARS
    images = to_float(glyphs[labeled_fonts[font], char])[:, None]
    return Labeled(torch.from_numpy(font).long(), torch.from_numpy(char).long(), images)


def load_labeled(path, data_seed=0, n_train=2500, n_val=100, n_test=3600, n_labeled_fonts=100):
    """{'train','val','test'}: Labeled splits, plus 'info' with the split sizes."""
    glyphs, _ = load_fonts(path)
    idx = split_indices(len(glyphs), data_seed, n_labeled_fonts, n_train, n_val, n_test)
    out = {k: labeled_split(glyphs, idx["labeled_fonts"], idx[k]) for k in ("train", "val", "test")}
    out["info"] = {"n_fonts": len(glyphs), "n_train": len(idx["train"]), "n_val": len(idx["val"]),
                   "n_test": len(idx["test"]), "image_size": glyphs.shape[-1]}
    return out


def load_unlabeled(path, data_seed=0, n_unlabeled_fonts=None, n_holdout=1000, n_labeled_fonts=100):
    """(train images, held-out images): the denoiser's clean targets, [N, 1, S, S] in [-1, 1].

    The holdout (for the denoiser's validation loss) is drawn from the unlabeled fonts' glyphs."""
    glyphs, _ = load_fonts(path)
    idx = split_indices(len(glyphs), data_seed, n_labeled_fonts, n_unlabeled_fonts=n_unlabeled_fonts)
    S = glyphs.shape[-1]
    other = glyphs[idx["unlabeled_fonts"]].reshape(-1, S, S)
    pool = idx["pool"]
    labeled = glyphs[idx["labeled_fonts"][pool // N_CHARS], pool % N_CHARS]
    rng = np.random.default_rng(data_seed + 1)
    perm = rng.permutation(len(other))
    n_holdout = min(n_holdout, len(other) // 10)
    holdout, rest = other[perm[:n_holdout]], other[perm[n_holdout:]]
    train = np.concatenate([rest, labeled])
    return to_float(train)[:, None], to_float(holdout)[:, None]
