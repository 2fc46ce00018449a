"""The font experiment: perturbations, models, the frozen denoiser, the objective, resume, the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter

from composed_ft.core import checkpoint
from composed_ft.core.compose import Composed, freeze, l2_penalty, weight_params
from composed_ft.imggen import data, perturbations, train
from composed_ft.imggen.__main__ import parse
from composed_ft.imggen.models import MLPGenerator, UNet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def u8_to_float(a):
    return torch.from_numpy(a.astype(np.float32) / 127.5 - 1)[None, None]


@pytest.fixture
def glyph():
    """A real glyph image (uint8, ink 255 on 0) from the synthetic fonts renderer."""
    from PIL import ImageDraw, ImageFont
    import matplotlib
    f = ImageFont.truetype(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data/fonts/ttf/DejaVuSans.ttf"), 24)
    img = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(img).text((6, 2), "R", fill=255, font=f)
    return np.asarray(img)


# ------------------------------------------------------------------ perturbations

def test_blur_radius_zero_is_identity_and_radius_grows_blur(glyph):
    x = u8_to_float(glyph).repeat(3, 1, 1, 1)
    y = perturbations.gaussian_blur(x, torch.tensor([0.0, 1.0, 3.0]))
    assert torch.allclose(y[0], x[0])
    # more blur -> further from the original, lower peak, same total ink up to the border
    d1, d3 = (y[1] - x[1]).abs().mean(), (y[2] - x[2]).abs().mean()
    assert 0 < d1 < d3
    assert y[2].max() < y[1].max() <= x[0].max()
    assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.02)


def test_blur_matches_pil_gaussian_blur(glyph):
    ref = np.asarray(Image.fromarray(glyph).filter(ImageFilter.GaussianBlur(2))).astype(np.float32)
    ours = (perturbations.gaussian_blur(u8_to_float(glyph), torch.tensor([2.0]))[0, 0].numpy() + 1) * 127.5
    # PIL approximates the Gaussian with box blurs: close, not equal.
    assert np.abs(ours - ref).mean() < 4.0


def test_blur_draws_a_fresh_radius_per_sample_and_call(glyph):
    x = u8_to_float(glyph).repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    a = perturbations.blur(x, 2.0)
    b = perturbations.blur(x, 2.0)
    assert not torch.allclose(a[0], a[1])   # per sample
    assert not torch.allclose(a, b)         # per call (epoch)


def test_contrast_matches_pil(glyph):
    ref = np.asarray(ImageEnhance.Contrast(Image.fromarray(glyph)).enhance(0.5)).astype(np.float32)
    ours = (perturbations.contrast(u8_to_float(glyph), 0.5)[0, 0].numpy() + 1) * 127.5
    assert np.abs(ours - ref).max() <= 1.5  # PIL rounds to integers and its mean to an int


def test_emboss_matches_pil_in_the_interior(glyph):
    ref = np.asarray(Image.fromarray(glyph).filter(ImageFilter.EMBOSS)).astype(np.float32)
    ours = (perturbations.emboss(u8_to_float(glyph))[0, 0].numpy() + 1) * 127.5
    assert np.abs(ours[1:-1, 1:-1] - ref[1:-1, 1:-1]).max() <= 1.0


# ------------------------------------------------------------------ models, splits

def test_model_shapes_and_ranges():
    f = MLPGenerator(dropout=0.1)
    out = f(torch.randint(0, 100, (5,)), torch.randint(0, 62, (5,)))
    assert out.shape == (5, 1, 32, 32) and out.abs().max() <= 1
    u = UNet(16)
    assert u(out).shape == (5, 1, 32, 32)
    assert UNet(8)(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 64, 64)


def test_splits_are_disjoint_and_sized():
    idx = data.split_indices(500, data_seed=3)
    tr, va, te = (set(idx[k].tolist()) for k in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (2500, 100, 3600)
    assert not (tr & va or tr & te or va & te)
    assert not set(idx["labeled_fonts"].tolist()) & set(idx["unlabeled_fonts"].tolist())
    assert len(idx["unlabeled_fonts"]) == 400
    big = data.split_indices(500, data_seed=3, n_train=4500)
    assert len(big["train"]) == 4500 and len(big["test"]) == 1600
    assert set(big["test"].tolist()) <= te  # the bigger train set eats into the test set only
    small = data.split_indices(500, data_seed=3, n_train=500)
    assert set(small["train"].tolist()) <= tr and set(small["test"].tolist()) == te
    assert len(data.split_indices(500, data_seed=3, n_unlabeled_fonts=100)["unlabeled_fonts"]) == 100


def test_unlabeled_set_never_holds_val_or_test_glyphs(tiny_fonts):
    from composed_ft.imggen.fonts import load_fonts
    glyphs, _ = load_fonts(tiny_fonts)
    labeled = data.load_labeled(tiny_fonts)
    unl, hold = data.load_unlabeled(tiny_fonts)
    key = lambda t: {bytes(((t[i, 0].numpy() + 1) * 127.5).round().astype(np.uint8)) for i in range(len(t))}  # noqa: E731
    u = key(unl) | key(hold)
    assert not key(labeled["test"].image) & u and not key(labeled["val"].image) & u
    assert key(labeled["train"].image) <= u


# ------------------------------------------------------------------ frozen denoiser, objective

def test_composed_keeps_denoiser_frozen_and_in_eval_mode():
    f, u = MLPGenerator(), UNet(8)
    c = Composed(f, u)
    c.train()
    assert f.training and not u.training
    assert all(not p.requires_grad for p in u.parameters())
    assert {id(p) for p in c.trainable_parameters()} == {id(p) for p in f.parameters()}


def test_l2_penalty_value_and_gradient():
    f = MLPGenerator()
    ws = weight_params(f)
    assert all(p.dim() > 1 for p in ws)
    assert not any(p is f.net[0].bias for p in ws)
    pen = l2_penalty(ws)
    assert torch.allclose(pen, sum((p ** 2).sum() for p in ws), rtol=1e-5)
    lam = 1e-3
    (lam * pen).backward()
    for p in ws:
        assert torch.allclose(p.grad, 2 * lam * p.detach(), rtol=1e-5, atol=1e-9)
    assert f.net[0].bias.grad is None


def test_composed_objective_gradient_flows_through_frozen_denoiser():
    torch.manual_seed(0)
    f, u = MLPGenerator(), freeze(UNet(8))
    y = torch.rand(4, 1, 32, 32) * 2 - 1
    font, char = torch.randint(0, 100, (4,)), torch.randint(0, 62, (4,))
    f.eval()
    out = f(font, char)
    out.retain_grad()
    loss = ((u(out) - y) ** 2).mean()
    loss.backward()
    # chain rule: d loss / d f(x) equals the U-Net's vector-Jacobian product at f(x)
    x = out.detach().requires_grad_(True)
    g, = torch.autograd.grad(((u(x) - y) ** 2).mean(), x)
    assert torch.allclose(out.grad, g, atol=1e-7)
    assert all(p.grad is None for p in u.parameters())
    assert f.net[-2].weight.grad is not None


# ------------------------------------------------------------------ stages, resume, CLI

def _args(*argv):
    return parse(list(argv))


@pytest.fixture(scope="module")
def denoiser_run(tiny_fonts, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("runs") / "den")
    train.denoise(_args("denoise", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", d, "--device", "cpu"))
    return d


def _train_args(tiny_fonts, denoiser_run, run_dir, method="composed", *extra):
    return _args("train", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", run_dir, "--method", method,
                 "--denoiser", denoiser_run, "--l2", "1e-4", "--n-train", "500", "--max-epoch", "4",
                 "--device", "cpu", *extra)


def test_denoiser_bit_identical_after_composed_training(tiny_fonts, denoiser_run, tmp_path):
    before = checkpoint.load(os.path.join(denoiser_run, "checkpoint_best.pt"))["model"]
    run = str(tmp_path / "comp")
    res = train.train_predictor(_train_args(tiny_fonts, denoiser_run, run))
    after = checkpoint.load(os.path.join(run, "checkpoint_last.pt"))["model"]
    den_after = {k[len("denoiser."):]: v for k, v in after.items() if k.startswith("denoiser.")}
    assert den_after.keys() == before.keys()
    assert all(torch.equal(before[k], den_after[k]) for k in before)
    # ...while the base predictor did change and the run produced its outputs
    torch.manual_seed(0)  # the run's --seed: its initial weights
    init = MLPGenerator(dropout=0.1).state_dict()
    assert not torch.equal(after["base.net.0.weight"], init["net.0.weight"])
    assert res["updates"] == 4 * 8 and os.path.exists(os.path.join(run, "samples.png"))
    assert os.path.exists(os.path.join(run, "curves.png"))


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("time", "items_per_s", "epoch_s", "gflops", "mfu")} for r in rows]


def test_resume_after_kill_equals_uninterrupted(tiny_fonts, denoiser_run, tmp_path, monkeypatch):
    from composed_ft.core import trainer

    full = str(tmp_path / "full")
    res_full = train.train_predictor(_train_args(tiny_fonts, denoiser_run, full))

    killed = str(tmp_path / "killed")
    real_progress = trainer.progress

    def dying_progress(batches, desc=""):
        for i, b in enumerate(real_progress(batches, desc=desc)):
            if desc == "epoch 3" and i == 2:
                raise KeyboardInterrupt  # killed in the middle of epoch 3, after epoch 2's checkpoint
            yield b

    monkeypatch.setattr(trainer, "progress", dying_progress)
    with pytest.raises(KeyboardInterrupt):
        train.train_predictor(_train_args(tiny_fonts, denoiser_run, killed))
    assert not os.path.exists(os.path.join(killed, "results.json"))
    monkeypatch.setattr(trainer, "progress", real_progress)
    res_resumed = train.train_predictor(_train_args(tiny_fonts, denoiser_run, killed))

    for k in ("test_mse_base", "test_mse_denoised", "best_epoch", "updates", "weight_norm"):
        assert res_full[k] == res_resumed[k], k
    # the resumed run's wall time includes the two epochs trained before the kill
    assert res_full["resumed_train_s"] == 0 and res_resumed["resumed_train_s"] > 0
    assert res_resumed["wall_s"] > res_resumed["train_s"] > res_resumed["resumed_train_s"]
    a = checkpoint.load(os.path.join(full, "checkpoint_last.pt"))["model"]
    b = checkpoint.load(os.path.join(killed, "checkpoint_last.pt"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    read = lambda d: [json.loads(x) for x in open(os.path.join(d, "metrics.jsonl"))]  # noqa: E731
    assert _strip(read(full)) == _strip(read(killed))
    # a finished run is a no-op
    mtime = os.path.getmtime(os.path.join(killed, "results.json"))
    assert train.train_predictor(_train_args(tiny_fonts, denoiser_run, killed)) == res_resumed
    assert os.path.getmtime(os.path.join(killed, "results.json")) == mtime


def _cli(*argv, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, CI="1")
    return subprocess.run([sys.executable, "-m", "composed_ft.imggen", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_cli_end_to_end_all_stages(tiny_fonts, tmp_path):
    runs = tmp_path / "runs"
    r = _cli("denoise", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", str(runs / "denoisers/blur2"))
    assert r.returncode == 0, r.stderr
    for method in ("direct", "composed"):
        r = _cli("train", "--preset", "smoke", "--method", method, "--tag", "main", "--data", tiny_fonts,
                 "--denoiser", str(runs / "denoisers/blur2"), "--run-dir", str(runs / f"main/{method}-s0"))
        assert r.returncode == 0, r.stderr
        assert "test MSE" in r.stderr
    out = tmp_path / "imggen.md"
    r = _cli("table", "--runs", str(runs), "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "| 2500 |" in text and "Composed Π(f(x))" in text and "Preset: smoke" in text
    assert (tmp_path / "imggen.tsv").exists()


def test_clear_errors(tiny_fonts, denoiser_run, tmp_path):
    r = _cli("build-fonts", "--font-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "f.npz"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nope" in r.stderr

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    r = _cli("denoise", "--preset", "smoke", "--data", str(bad), "--run-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.npz" in r.stderr

    # a predictor checkpoint passed where the denoiser is expected
    comp = tmp_path / "comp"
    train.train_predictor(_train_args(tiny_fonts, denoiser_run, str(comp), "direct", "--max-epoch", "1"))
    r = _cli("train", "--preset", "smoke", "--method", "composed", "--data", tiny_fonts,
             "--denoiser", str(comp), "--run-dir", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a denoiser checkpoint" in r.stderr

    # a denoiser checkpoint whose weights do not fit the model its config describes
    ck = checkpoint.load(os.path.join(denoiser_run, "checkpoint_best.pt"))
    ck["config"]["unet_width"] = 4
    os.makedirs(tmp_path / "wrong")
    torch.save(ck, tmp_path / "wrong" / "checkpoint_best.pt")
    r = _cli("train", "--preset", "smoke", "--method", "composed", "--data", tiny_fonts,
             "--denoiser", str(tmp_path / "wrong"), "--run-dir", str(tmp_path / "y"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not fit" in r.stderr

    (tmp_path / "corrupt.pt").write_bytes(b"garbage")
    r = _cli("train", "--preset", "smoke", "--method", "composed", "--data", tiny_fonts,
             "--denoiser", str(tmp_path / "corrupt.pt"), "--run-dir", str(tmp_path / "z"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "corrupt.pt" in r.stderr
