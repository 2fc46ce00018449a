"""Whole-set filters of the fonts dataset (step 3 of fonts.py's pipeline, in the parent process):
symbol fonts, visual duplicates and the per-family cap, each a boolean drop mask over the faces."""
import collections

import numpy as np

from composed_ft.imggen.fonts import NUM_CHARS

SYMBOL_MIN_FRACTION = 0.10  # symbol font: fewer of its glyphs with their own char among the 3 nearest prototypes
SYMBOL_TOP_K = 3
SYMBOL_MIN_LETTERS = 0.20  # ... or of its 52 letters
SYMBOL_MIN_LOWER = 0.20    # ... or of its lower case while the capitals hit (cmsy-like)
SYMBOL_BLUR = 0.7          # Gaussian sigma (pixels of the 16x16 shapes) before comparing
DEDUPE_COSINE = 0.995


def small_vectors(glyphs):
    """uint8 [N, 62, S, S] -> float32 [N, 62, 256]: 16x16 box-downsampled glyphs in [0, 1]."""
    n, c, s, _ = glyphs.shape
    f = s // 16
    g = glyphs.reshape(n, c, 16, f, 16, f).astype(np.float32).mean(axis=(3, 5)) / 255.0
    return g.reshape(n, c, 256)


def _normalize(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-8)


def _blur_matrix(side=16, sigma=SYMBOL_BLUR):
    x = np.arange(side)
    k = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


def symbol_mask(shapes, caps_only=None, iterations=2):
    """True for symbol fonts (dingbats, math, runes, scripts mapped onto ASCII ...).

    `shapes`: [N, 62, 256] glyphs each scaled on its own to 16x16 (see shape_vectors), so the
    test compares shapes, not sizes. Every glyph is compared (cosine, after a slight blur so
    hairline and bold strokes still match) with the per-character mean glyphs (prototypes); it
    is a hit when its own character, or the same letter in the other case, is among the
    SYMBOL_TOP_K nearest prototypes. A font is a symbol font when fewer than
    SYMBOL_MIN_FRACTION of its 62 glyphs hit, or fewer than SYMBOL_MIN_LETTERS of its 52 letters
    (symbols on the letters, real digits: e.g. msam, drmsym, Tamil or runic fonts on ASCII), or
    when the capitals hit but the lower case does not (cmsy-like: calligraphic capitals plus
    math symbols; caps-only fonts exempt). The prototypes are recomputed once without the
    flagged fonts."""
    n = len(shapes)
    is_symbol = np.zeros(n, bool)
    if n == 0:
        return is_symbol
    caps_only = np.zeros(n, bool) if caps_only is None else np.asarray(caps_only, bool)
    k = _blur_matrix()
    x = np.asarray(shapes, np.float32).reshape(n, NUM_CHARS, 16, 16)
    unit = _normalize((k @ x @ k.T).reshape(n, NUM_CHARS, 256))         # blur rows and columns
    own = np.arange(NUM_CHARS)
    other = np.where(own < 10, own, np.where(own < 36, own + 26, own - 26))   # A <-> a
    for _ in range(iterations):
        keep = ~is_symbol if (~is_symbol).any() else np.ones(n, bool)
        protos = _normalize(unit[keep].mean(axis=0))                 # [62, 256]
        sims = np.einsum("ncd,kd->nck", unit, protos)                # [N, 62, 62]
        top = np.argsort(-sims, axis=2)[:, :, :SYMBOL_TOP_K]
        hit = (top == own[None, :, None]).any(axis=2) | (top == other[None, :, None]).any(axis=2)
        upper, lower = hit[:, 10:36].mean(axis=1), hit[:, 36:].mean(axis=1)
        is_symbol = ((hit.mean(axis=1) < SYMBOL_MIN_FRACTION)
                     | (hit[:, 10:].mean(axis=1) < SYMBOL_MIN_LETTERS)
                     | ((lower < SYMBOL_MIN_LOWER) & (upper >= 0.5) & ~caps_only))
    return is_symbol


def visual_duplicates(vecs, threshold=DEDUPE_COSINE, block=1024):
    """True for every font whose 62x16x16 glyph vector has cosine >= threshold with an earlier
    kept font (greedy in the given order, so the first of each group is kept)."""
    n = len(vecs)
    flat = _normalize(vecs.reshape(n, -1))
    partners = [[] for _ in range(n)]
    for s in range(0, n, block):
        sims = flat[s: s + block] @ flat.T
        ii, jj = np.nonzero(sims >= threshold)
        for i, j in zip(ii + s, jj):
            if j > i:
                partners[i].append(j)
    dup = np.zeros(n, bool)
    for i in range(n):
        if not dup[i]:
            for j in partners[i]:
                dup[j] = True
    return dup


def family_cap_mask(vecs, families, cap):
    """True for faces beyond `cap` per family; the kept ones are picked by farthest-point sampling
    over the glyph vectors (starting from the first in keep order), so a capped family keeps its
    most different weights/widths/slants."""
    drop = np.zeros(len(vecs), bool)
    if cap <= 0:
        return drop
    groups = collections.defaultdict(list)
    for i, fam in enumerate(families):
        groups[fam.strip().lower()].append(i)
    for members in groups.values():
        if len(members) <= cap:
            continue
        x = vecs[members].reshape(len(members), -1)
        chosen = [0]
        dist = np.linalg.norm(x - x[0], axis=1)
        while len(chosen) < cap:
            k = int(np.argmax(dist))
            chosen.append(k)
            dist = np.minimum(dist, np.linalg.norm(x - x[k], axis=1))
        keep = set(chosen)
        for pos, i in enumerate(members):
            if pos not in keep:
                drop[i] = True
    return drop
