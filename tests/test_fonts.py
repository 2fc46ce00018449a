"""Fonts dataset builder: glyph validation, symbol filter, dedupe, output format, load errors.

Uses the real font files matplotlib ships (DejaVu, STIX, BaKoMa cm*), so no font install is needed.
"""
import argparse
import os
import shutil

import numpy as np
import pytest

from composed_ft.core.errors import UserError
from composed_ft.imggen import build_fonts as B, font_filters, fonts as F

matplotlib = pytest.importorskip("matplotlib")
MPL_FONTS = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
TEXT_FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf",
              "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf",
              "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf"]


def mpl(name):
    path = os.path.join(MPL_FONTS, name)
    if not os.path.isfile(path):
        pytest.skip(f"matplotlib does not ship {name}")
    return path


def parse(argv):
    return B.add_args(argparse.ArgumentParser()).parse_args(argv)


def test_chars_constant():
    assert F.CHARS == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert len(F.CHARS) == F.NUM_CHARS == 62


def test_text_font_kept_with_62_distinct_glyphs():
    [res] = F.process_file((0, mpl("DejaVuSans.ttf"), 32))
    assert res["status"] == "ok" and not res["caps_only"]
    assert res["family"] == "DejaVu Sans"
    g = res["glyphs"]
    assert g.shape == (62, 32, 32) and g.dtype == np.uint8
    assert len({x.tobytes() for x in g}) == 62
    assert g.max() == F.INK                                   # ink is bright ...
    assert (g[:, 0, :] == F.BACKGROUND).all() and (g[:, :, 0] == F.BACKGROUND).all()  # ... on black
    # one uniform scale: the tallest glyph spans (almost) the whole box, 'o' is clearly smaller
    rows = lambda im: np.flatnonzero(im.max(axis=1) > 0)  # noqa: E731
    heights = [len(rows(x)) for x in g]
    assert max(heights) >= 29
    assert heights[F.CHARS.index("o")] < heights[F.CHARS.index("H")]


@pytest.mark.parametrize("name", ["STIXSizOneSymReg.ttf", "STIXNonUni.ttf", "DejaVuSansDisplay.ttf"])
def test_font_missing_glyphs_rejected(name):
    # these faces lack most of 0-9A-Za-z: the chars render as their (blank) .notdef glyph
    [res] = F.process_file((0, mpl(name), 32))
    assert res["status"] in ("missing_glyphs", "blank_glyphs")
    assert res["glyphs"] is None


def test_notdef_box_rejected():
    # LastResort draws the same kind of box for every char: not a usable face
    [res] = F.process_file((0, mpl("LastResortHE-Regular.ttf"), 32))
    assert res["status"] in ("missing_glyphs", "degenerate")


def test_unloadable_file_is_dropped_not_fatal(tmp_path):
    bad = tmp_path / "broken.ttf"
    bad.write_bytes(b"\0" * 1000)
    [res] = F.process_file((0, str(bad), 32))
    assert res["status"] == "load_error"


def test_symbol_fonts_rejected_text_fonts_kept():
    # cmex10 (big delimiters, radicals) and cmsy10 (math symbols, calligraphic capitals) pass the
    # coverage test -- every char position draws something -- but are not text fonts
    for name in ("cmex10.ttf", "cmsy10.ttf"):
        assert F.process_file((0, mpl(name), 32))[0]["status"] == "ok"
    files = [mpl(n) for n in TEXT_FONTS + ["cmmi10.ttf", "cmex10.ttf", "cmsy10.ttf"]]
    glyphs, meta, summary = B.build(files, size=32, jobs=1)
    kept = {os.path.basename(m["file"]) for m in meta}
    assert not kept & {"cmex10.ttf", "cmsy10.ttf"}
    assert summary["dropped"]["symbol"] == 2
    assert kept == set(TEXT_FONTS + ["cmmi10.ttf"])     # math italic still has real letters
    assert len(glyphs) == len(meta) == summary["kept"]


def test_dedupe_same_font_under_another_name(tmp_path):
    src = mpl("DejaVuSans.ttf")
    copy = tmp_path / "MyRenamedSans.ttf"
    shutil.copy(src, copy)
    # different bytes, same glyphs: trailing padding after the font data
    padded = tmp_path / "PaddedSans.ttf"
    padded.write_bytes(open(src, "rb").read() + b"\0" * 64)
    other = mpl("DejaVuSerif.ttf")
    glyphs, meta, summary = B.build([src, str(copy), str(padded), other], size=32, jobs=1)
    assert [os.path.basename(m["file"]) for m in meta] == ["DejaVuSans.ttf", "DejaVuSerif.ttf"]
    assert summary["dropped"]["duplicate_file"] == 1
    assert summary["dropped"]["duplicate_visual"] == 1


def test_visual_duplicates_and_family_cap_helpers():
    rng = np.random.default_rng(0)
    v = rng.random((4, 62, 256)).astype(np.float32)
    v[2] = v[0] * 1.001                        # cosine 1 with font 0
    assert font_filters.visual_duplicates(v).tolist() == [False, False, True, False]
    drop = font_filters.family_cap_mask(v, ["A", "A", "A", "B"], cap=2)
    assert drop.sum() == 1 and not drop[0] and not drop[3]
    assert not font_filters.family_cap_mask(v, ["A"] * 4, cap=0).any()


def test_build_cli_writes_matching_arrays_and_manifest(tmp_path):
    src = tmp_path / "fonts"
    sub = src / "nested"
    sub.mkdir(parents=True)
    for n in ["DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "cmr10.ttf"]:
        shutil.copy(mpl(n), src / n)
    shutil.copy(mpl("STIXSizOneSymReg.ttf"), sub / "STIXSizOneSymReg.TTF")   # upper-case extension
    os.symlink(src / "cmr10.ttf", src / "link.ttf")                          # symlinks are skipped
    (src / "readme.txt").write_text("not a font")
    out = tmp_path / "out" / "fonts32.npz"
    summary = B.build_from_args(parse(["--no-system-fonts", "--font-dir", str(src), "--out", str(out),
                           "--jobs", "2", "--limit", "4"]))
    assert summary["files"] == 4 and summary["faces"] == 4
    assert summary["kept"] == 3 and summary["dropped"]["blank_glyphs"] + summary["dropped"]["missing_glyphs"] == 1
    glyphs, manifest = F.load_fonts(out)
    assert glyphs.shape == (3, 62, 32, 32) and glyphs.dtype == np.uint8
    assert len(manifest) == 3
    assert [m["index"] for m in manifest] == [0, 1, 2]
    assert {os.path.basename(m["file"]) for m in manifest} == {"DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "cmr10.ttf"}
    assert set(manifest[0]) == set(F.MANIFEST_COLUMNS)
    assert all(m["face_index"] == 0 and m["caps_only"] is False and m["family"] for m in manifest)
    header = open(F.manifest_path(out)).readline().rstrip("\n").split("\t")
    assert header == list(F.MANIFEST_COLUMNS)
    assert not [p for p in os.listdir(out.parent) if p.endswith(".tmp")]     # atomic write left no temp


def test_build_size_64(tmp_path):
    src = tmp_path / "fonts"
    src.mkdir()
    shutil.copy(mpl("DejaVuSans.ttf"), src / "a.ttf")
    out = tmp_path / "fonts64.npz"
    assert B.run(parse(["--no-system-fonts", "--font-dir", str(src), "--out", str(out), "--size", "64",
                        "--jobs", "1"])) is None
    glyphs, manifest = F.load_fonts(out)
    assert glyphs.shape == (1, 62, 64, 64) and len(manifest) == 1


def test_missing_font_dir_is_user_error(tmp_path):
    missing = str(tmp_path / "no-such-dir")
    with pytest.raises(UserError, match="no-such-dir"):
        B.run(parse(["--font-dir", missing, "--out", str(tmp_path / "x.npz")]))


def _write_valid(path, n=2):
    F.write_fonts(path, np.zeros((n, 62, 32, 32), np.uint8),
                  [dict(file=f"f{i}.ttf", face_index=0, family="F", style="Regular", package="",
                        license="", caps_only=False) for i in range(n)])


def test_load_fonts_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(UserError, match="missing.npz"):
        F.load_fonts(missing)

    good = tmp_path / "good.npz"
    _write_valid(good)
    glyphs, manifest = F.load_fonts(good)
    assert glyphs.shape == (2, 62, 32, 32) and len(manifest) == 2

    truncated = tmp_path / "truncated.npz"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    shutil.copy(F.manifest_path(good), F.manifest_path(truncated))
    with pytest.raises(UserError, match="truncated.npz"):
        F.load_fonts(truncated)

    notzip = tmp_path / "notzip.npz"
    notzip.write_text("hello, I am not a zip file\n" * 10)
    with pytest.raises(UserError, match="notzip.npz"):
        F.load_fonts(notzip)

    wrong = tmp_path / "wrong.npz"
    np.savez_compressed(wrong, glyphs=np.zeros((2, 10, 32, 32), np.uint8))
    with pytest.raises(UserError, match="wrong.npz"):
        F.load_fonts(wrong)

    nomanifest = tmp_path / "nomanifest.npz"
    shutil.copy(good, nomanifest)
    with pytest.raises(UserError, match="nomanifest"):
        F.load_fonts(nomanifest)
