"""Pictures of the font experiment: sample grids (fonts x characters) and learning curves."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ..core.io import atomic_path  # noqa: E402


def grid_pairs(font, char, n_fonts=10, n_cols=20):
    """Positions of a fonts x characters grid drawn only from the given (test) pairs: row r is the
    r-th font that has at least n_cols pairs, its columns that font's pairs in character order."""
    font, char = np.asarray(font), np.asarray(char)
    rows = []
    for f in np.unique(font):
        idx = np.where(font == f)[0]
        if len(idx) >= n_cols:
            rows.append(idx[np.argsort(char[idx])][:n_cols])
        if len(rows) == n_fonts:
            break
    return np.stack(rows) if rows else np.zeros((0, n_cols), dtype=int)


def tile(images, positions, pad=1):
    """images [N, 1, S, S] in [-1, 1]; positions [R, C] indices -> uint8 mosaic (ink white)."""
    R, C = positions.shape
    S = images.shape[-1]
    out = np.zeros((R * (S + pad) + pad, C * (S + pad) + pad), dtype=np.uint8) + 60
    for r in range(R):
        for c in range(C):
            img = ((images[positions[r, c], 0] + 1) * 127.5).clip(0, 255).astype(np.uint8)
            out[pad + r * (S + pad): pad + r * (S + pad) + S, pad + c * (S + pad): pad + c * (S + pad) + S] = img
    return out


def save_grids(path, panels, positions, scale=2):
    """panels: [(title, images[, key])] stacked vertically, a title strip above each, into one PNG.

    The PNG carries a text chunk "panels": JSON [{key, title, top, height}] in pixels of the saved
    image (mosaic only, title strip excluded), so that read_panels() can cut one panel back out —
    the report assembles the paper's figure from the panels of several runs."""
    import json

    from PIL import ImageDraw
    from PIL.PngImagePlugin import PngInfo

    mosaics = [(p[0], tile(p[1], positions), p[2] if len(p) > 2 else p[0]) for p in panels]
    W = max(m.shape[1] for _, m, _ in mosaics)
    strips, layout, y = [], [], 0
    for title, m, key in mosaics:
        head = Image.new("L", (W, 12), 0)
        ImageDraw.Draw(head).text((2, 0), title, fill=255)
        strips += [np.asarray(head), np.pad(m, ((0, 0), (0, W - m.shape[1])))]
        layout.append({"key": key, "title": title, "top": (y + 12) * scale, "height": m.shape[0] * scale})
        y += 12 + m.shape[0]
    img = Image.fromarray(np.concatenate(strips)).resize((W * scale, y * scale), Image.NEAREST)
    info = PngInfo()
    info.add_text("panels", json.dumps(layout))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", pnginfo=info)


def read_panels(path):
    """{key: (title, PIL image of that panel's mosaic)} from a PNG written by save_grids."""
    import json

    img = Image.open(path)
    img.load()
    layout = json.loads(img.info.get("panels", "[]"))
    return {p["key"]: (p["title"], img.crop((0, p["top"], img.width, p["top"] + p["height"]))) for p in layout}


def stack_panels(path, panels, scale=1):
    """[(title, PIL image)] -> one PNG, a title strip (drawn at this size) above each panel."""
    from PIL import ImageDraw

    W = max(im.width for _, im in panels)
    head_h = 12 * scale * 2
    out = Image.new("L", (W, sum(head_h + im.height for _, im in panels)), 0)
    y = 0
    for title, im in panels:
        ImageDraw.Draw(out).text((4, y + 4), title, fill=255, font_size=10 * scale * 2 - 4)
        out.paste(im.convert("L"), (0, y + head_h))
        y += head_h + im.height
    with atomic_path(path) as tmp:
        out.save(tmp, format="PNG")


def learning_curves(path, rows, keys, title=""):
    """Plot each of `keys` from metrics rows against epoch (log scale) into a PNG."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k in keys:
        pts = [(r["epoch"], r[k]) for r in rows if k in r]
        if pts:
            ax.plot(*zip(*pts), label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.set_yscale("log")
    ax.set_title(title or os.path.basename(os.path.dirname(path)))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
