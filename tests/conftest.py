"""Shared fixtures: a small synthetic fonts dataset rendered from real font files that ship with
matplotlib (so tests need no font install), varied per "font" by size, weight, slant and offset."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))


def load_script(name):
    """scripts/<name>.py as a module (the scripts are not a package; scripts/ goes on sys.path so that a
    script's own imports of its neighbours resolve, as when it runs)."""
    import importlib.util
    scripts = os.path.join(ROOT, "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    spec = importlib.util.spec_from_file_location(name, os.path.join(scripts, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def require_shared(*parts):
    """The path of data under ../shared/data. Missing, the test fails with this message in CI (where
    ../shared must be provided: a silent skip would hide every test that needs it) and is skipped
    elsewhere (a clone without ../shared beside it)."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        msg = f"{path}: missing; this test needs ../shared beside the repository (see ../shared/README.md)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def make_synthetic_fonts(out, n_fonts=130, size=32, seed=0):
    import matplotlib
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    from composed_ft.imggen.fonts import CHARS, write_fonts

    ttf_dir = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
    faces = [os.path.join(ttf_dir, f) for f in ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
                                                 "DejaVuSans-Bold.ttf", "DejaVuSerif-Italic.ttf")]
    rng = np.random.default_rng(seed)
    glyphs = np.zeros((n_fonts, len(CHARS), size, size), dtype=np.uint8)
    meta = []
    for i in range(n_fonts):
        face = faces[i % len(faces)]
        pt = int(rng.integers(size * 5 // 8, size * 7 // 8))
        font = ImageFont.truetype(face, pt)
        shear = float(rng.uniform(-0.25, 0.25))
        bold = bool(rng.integers(0, 2))
        dx, dy = rng.integers(-2, 3, size=2)
        for j, ch in enumerate(CHARS):
            img = Image.new("L", (size, size), 0)
            d = ImageDraw.Draw(img)
            left, t, r, b = d.textbbox((0, 0), ch, font=font)
            d.text(((size - (r - left)) / 2 - left + dx, (size - (b - t)) / 2 - t + dy), ch, fill=255, font=font)
            img = img.transform(img.size, Image.AFFINE, (1, shear, -shear * size / 2, 0, 1, 0), Image.BILINEAR)
            if bold:
                img = img.filter(ImageFilter.MaxFilter(3))
            glyphs[i, j] = np.asarray(img)
        meta.append({"file": face, "face_index": 0, "family": os.path.basename(face), "style": f"variant {i}",
                     "package": "matplotlib", "license": "Bitstream Vera / DejaVu", "caps_only": False})
    write_fonts(out, glyphs, meta)
    return out


@pytest.fixture(scope="session")
def tiny_fonts(tmp_path_factory):
    return make_synthetic_fonts(str(tmp_path_factory.mktemp("fonts") / "fonts32.npz"))
