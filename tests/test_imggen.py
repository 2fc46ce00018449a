"""The font experiment: perturbations, models, the frozen denoiser, the objective, resume, the CLI."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter

from composed_ft.core import checkpoint
from composed_ft.core.compose import Composed, freeze, l2_penalty, nonbias_params, weight_params
from composed_ft.core.errors import UserError
from composed_ft.imggen import data, perturbations, train
from composed_ft.imggen.__main__ import parse
from composed_ft.imggen.models import FrozenUNet, MLPGenerator, PreActUNet, UNet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def u8_to_float(a):
    return torch.from_numpy(a.astype(np.float32) / 127.5 - 1)[None, None]


@pytest.fixture
def glyph():
    """A real glyph image (uint8, ink 255 on 0) from the synthetic fonts renderer."""
    import matplotlib
    from PIL import ImageDraw, ImageFont
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
    for u in (UNet(16), PreActUNet(16)):
        assert u(out).shape == (5, 1, 32, 32)
    assert UNet(8)(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 64, 64)


def test_batchnorm_eps_is_the_authors_and_breaks_rescaling_invariance():
    """The authors' BatchNorm1d(n, 0.8): with eps 1e-5 scaling a hidden Linear layer's weights and bias
    leaves f unchanged (the norm undoes it, so an L2 penalty cannot simplify f); with eps 0.8 it does not,
    and f starts near-constant (PAPER.md)."""
    assert {m.eps for m in MLPGenerator().modules() if isinstance(m, torch.nn.BatchNorm1d)} == {0.8}
    torch.manual_seed(1)
    font, char = torch.randint(0, 100, (64,)), torch.randint(0, 62, (64,))
    change, spread = {}, {}
    for eps in (1e-5, 0.8):
        torch.manual_seed(0)
        f = MLPGenerator(bn_eps=eps).train()
        before = f(font, char).detach()
        spread[eps] = before.std().item()
        lin = [m for m in f.net if isinstance(m, torch.nn.Linear)][2]  # a hidden Linear followed by BatchNorm
        with torch.no_grad():
            lin.weight.mul_(10), lin.bias.mul_(10)
        change[eps] = (f(font, char).detach() - before).abs().max().item()
    assert change[1e-5] < 1e-3 and change[0.8] > 0.5 * spread[0.8]
    assert spread[0.8] < 0.2 * spread[1e-5]  # near-constant at initialization


def test_unet_blocks_are_conv_norm_activation_with_three_dropouts():
    """The authors' layout: every block is conv -> [InstanceNorm] -> activation [-> dropout 0.5]; no norm on
    the first block and the bottleneck; dropout in the bottleneck and both up blocks; 4x4 output conv."""
    from torch import nn
    u = UNet(16)
    kinds = lambda block: [type(m).__name__ for m in block]  # noqa: E731
    assert kinds(u.down1) == ["Conv2d", "LeakyReLU"]
    assert kinds(u.down2) == ["Conv2d", "InstanceNorm2d", "LeakyReLU"]
    assert kinds(u.bottleneck) == ["Conv2d", "LeakyReLU", "Dropout"]
    assert kinds(u.up1) == kinds(u.up2) == ["ConvTranspose2d", "InstanceNorm2d", "ReLU", "Dropout"]
    assert kinds(u.out) == ["Identity", "UpsampleConv", "Tanh"] and u.out[1].kernel_size == (4, 4)
    drops = [m for m in u.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 3 and {d.p for d in drops} == {0.5}
    assert u.down2[0].bias is None and u.up1[0].bias is None  # a norm follows: no bias, as the authors'
    # skip connections: the up blocks see the concatenated encoder features
    assert u.up2[0].in_channels == 4 * 16 and u.out[1].in_channels == 2 * 16
    # eval mode is deterministic (dropout off), train mode is not
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    u.eval()
    assert torch.equal(u(x), u(x))
    u.train()
    assert not torch.equal(u(x), u(x))


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


def test_unet_output_block_equals_the_authors_upsample_pad_conv():
    """UpsampleConv (four 3x3 phase convs at half resolution + pixel_shuffle) computes nn.Upsample(2) ->
    ZeroPad2d((1, 0, 1, 0)) -> Conv2d(k 4, padding 1) with the same 4x4 weights: forward, input gradient
    and weight gradients; so do this project's previous Upsample2x (custom backward) and PaddedConv."""
    from torch import nn

    from composed_ft.imggen.models import PaddedConv, Upsample2x
    torch.manual_seed(0)
    u = UNet(8)
    ref = nn.Conv2d(16, 1, 4, 1, 1)
    ref.load_state_dict(u.out[1].state_dict())
    padded = PaddedConv(16)
    padded.load_state_dict(u.out[1].state_dict())
    x = torch.randn(3, 16, 16, 16)
    ours_in, ref_in, pad_in = (x.clone().requires_grad_(True) for _ in range(3))
    ours = u.out[1](u.out[0](ours_in))
    theirs = ref(nn.ZeroPad2d((1, 0, 1, 0))(nn.Upsample(scale_factor=2)(ref_in)))
    before = padded(Upsample2x()(pad_in))
    assert ours.shape == theirs.shape == (3, 1, 32, 32)
    assert torch.allclose(ours, theirs, atol=1e-5) and torch.allclose(before, theirs, atol=1e-5)
    g = torch.randn_like(ours)
    ours.backward(g), theirs.backward(g), before.backward(g)
    assert torch.allclose(ours_in.grad, ref_in.grad, atol=1e-5) and torch.allclose(pad_in.grad, ref_in.grad, atol=1e-5)
    assert torch.allclose(u.out[1].weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
    assert torch.allclose(u.out[1].bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-3)
    # the phase map is derived, not a parameter: checkpoints hold the 4x4 kernel only, as before
    assert set(u.out.state_dict()) == {"1.weight", "1.bias"}


@pytest.mark.parametrize("channels_last", [False, True])
def test_frozen_unet_is_the_unet_up_to_rounding(channels_last):
    """FrozenUNet (the composed step's Π: space-to-depth first conv, precomputed phase kernel, channels last)
    computes the frozen UNet's outputs and input gradients up to float rounding, keeps its state-dict keys,
    stays frozen and in eval mode, and follows a checkpoint loaded into it."""
    torch.manual_seed(0)
    u = freeze(UNet(width=8))
    fast = FrozenUNet(UNet(width=8), channels_last=channels_last)
    assert fast.state_dict().keys() == u.state_dict().keys()
    fast.load_state_dict(u.state_dict())  # the derived kernels follow the loaded weights
    fast.train()
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    x, g = torch.rand(6, 1, 32, 32) * 2 - 1, torch.randn(6, 1, 32, 32)
    outs = []
    for m in (u, fast):
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        outs.append((y, torch.autograd.grad(y, xi, g)[0]))
    (y0, g0), (y1, g1) = outs
    assert y1.shape == y0.shape and y1.is_contiguous()
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-5 * g0.abs().max().item())
    with torch.no_grad():
        for p in u.parameters():
            p.mul_(0.5)
        fast.load_state_dict(u.state_dict())
    torch.testing.assert_close(fast(x), u(x), rtol=1e-5, atol=1e-5)


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


def test_l2_over_nonbias_params_includes_batchnorm_scales_and_excludes_every_bias():
    """The authors' penalty sums over every parameter whose name has no 'bias': Linear weights,
    embeddings and BatchNorm scales; never a Linear or BatchNorm bias."""
    f = MLPGenerator()
    ids = {id(p) for p in nonbias_params(f)}
    bns = [m for m in f.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    lins = [m for m in f.modules() if isinstance(m, torch.nn.Linear)]
    assert len(bns) == 5 and all(id(m.weight) in ids and id(m.bias) not in ids for m in bns)
    assert all(id(m.weight) in ids and id(m.bias) not in ids for m in lins)
    assert id(f.font_emb.weight) in ids and id(f.char_emb.weight) in ids
    assert len(ids) == len(bns) + len(lins) + 2
    # BatchNorm scales start at 1: the authors' penalty is larger than the matrices-only one by their count
    extra = l2_penalty(nonbias_params(f)) - l2_penalty(weight_params(f))
    assert torch.isclose(extra, torch.tensor(float(sum(m.weight.numel() for m in bns))))


def test_presets_give_the_authors_losses_per_method_and_flags_override():
    def cfg(*argv):
        return parse(list(argv)).config
    for preset in ("cpu", "paper", "smoke"):
        d = cfg("train", "--preset", preset, "--method", "direct", "--denoiser", "x", "--run-dir", "r")
        c = cfg("train", "--preset", preset, "--method", "composed", "--denoiser", "x", "--run-dir", "r")
        assert (d.dropout, d.l2, d.bn_eps, d.l2_scope) == (0.0, 0.0, 0.8, "nonbias")
        assert (c.dropout, c.l2, c.bn_eps, c.l2_scope) == (0.1, 1e-4, 0.8, "nonbias")
        # the authors' Adam and U-Net, from the preset's table (no argparse default)
        assert (d.lr, d.beta1, d.beta2) == (2e-4, 0.5, 0.999)
        den = cfg("denoise", "--preset", preset, "--run-dir", "r")
        assert (den.unet_dropout, den.unet_layout, den.blur_max) == (0.5, "authors", 2.0)
    paper = cfg("train", "--preset", "paper", "--method", "direct", "--denoiser", "x", "--run-dir", "r")
    assert paper.max_epoch == 1000 and paper.max_update == 0
    old = cfg("train", "--method", "direct", "--denoiser", "x", "--run-dir", "r", "--bn-eps", "1e-5",
              "--dropout", "0.1", "--l2-scope", "weights", "--l2", "0", "--lr", "1e-3")
    assert (old.bn_eps, old.dropout, old.l2_scope, old.l2, old.lr) == (1e-5, 0.1, "weights", 0.0, 1e-3)
    assert cfg("denoise", "--run-dir", "r").unet_layout == "authors"
    assert cfg("denoise", "--run-dir", "r", "--unet-layout", "preact").unet_layout == "preact"
    with pytest.raises(dataclasses.FrozenInstanceError):  # resolved once, changed by nobody
        old.lr = 1.0


def test_presets_print_every_value_a_stage_uses():
    """`presets` prints, per preset, every setting each stage's config holds (but what names the run), and
    --get answers one of them as the stage resolves it."""
    from composed_ft.imggen.__main__ import resolved_tables
    from composed_ft.imggen.config import SELECTING, DenoiseConfig, TrainConfig
    for preset in ("smoke", "cpu", "paper"):
        tables = resolved_tables(preset)
        for column, cls in (("denoise", DenoiseConfig), ("train direct", TrainConfig), ("train composed", TrainConfig)):
            fields = {f.name for f in dataclasses.fields(cls)} - set(SELECTING) | ({"perturb"} & set(tables[column]))
            assert set(tables[column]) == fields, column
            assert all(v is not None for v in tables[column].values()), column
    out = subprocess.run([sys.executable, "-m", "composed_ft.imggen", "presets", "--preset", "cpu"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    for key in ("lr", "beta1", "beta2", "unet_dropout", "unet_layout", "blur_max", "contrast", "n_train"):
        assert f"| {key} |" in out, key
    get = subprocess.run([sys.executable, "-m", "composed_ft.imggen", "presets", "--preset", "paper", "--get",
                          "denoise.unet_width"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert get.strip() == "64"


def test_from_saved_reads_an_older_run_as_it_was_made():
    """A setting an older run's config.json lacks (or holds as null) reads back as the value that run was
    made with, so today's resolution of the same command compares equal and the report reads it as made."""
    from composed_ft.imggen.config import LEGACY, comparable, from_saved
    old = {"stage": "train", "command": "train", "method": "direct", "dropout": 0.1, "l2": 0.0, "max_update": None}
    c = from_saved(old)
    assert (c.bn_eps, c.l2_scope, c.variant, c.max_update, c.denormals) == (1e-5, "weights", "", 0, "keep")
    assert "command" not in comparable(old) and c.dropout == 0.1
    den = from_saved({"stage": "denoise", "unet_width": 16, "unet_dropout": 0.5})
    assert den.unet_layout == LEGACY["unet_layout"] == "preact" and den.unlabeled_fonts is None
    # every archived run compares equal to itself read back (the keys it holds)
    import glob
    paths = glob.glob(os.path.join(ROOT, "results/runs/imggen/cpu/**/config.json"), recursive=True)
    assert paths
    for p in paths:
        saved = json.load(open(p))["config"]
        back = comparable(saved)
        assert all(back[k] == v for k, v in saved.items() if k in back and v is not None), p


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


def _strip(rows):  # without what measures time (every *_s: epoch_s, val_s, update_s, ...)
    return [{k: v for k, v in r.items() if k not in ("time", "items_per_s", "gflops", "mfu") and not k.endswith("_s")}
            for r in rows]


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


def test_extend_a_finished_run_equals_the_longer_run(tiny_fonts, denoiser_run, tmp_path):
    """--extend continues a finished run to a larger budget; it ends where a run given that budget from
    the start ends (weights, best epoch, test MSE, metric rows). Without --extend, or to a smaller budget,
    a changed budget is refused."""
    full = str(tmp_path / "full")
    res_full = train.train_predictor(_train_args(tiny_fonts, denoiser_run, full))
    short = str(tmp_path / "short")
    res_short = train.train_predictor(_train_args(tiny_fonts, denoiser_run, short, "composed", "--max-epoch", "2"))
    assert res_short["epochs"] == 2
    with pytest.raises(UserError, match=r"max_epoch: 2 -> 4.*--overwrite.*--extend"):
        train.train_predictor(_train_args(tiny_fonts, denoiser_run, short))
    res_ext = train.train_predictor(_train_args(tiny_fonts, denoiser_run, short, "composed", "--extend"))
    for k in ("test_mse_base", "test_mse_denoised", "best_epoch", "epochs", "updates", "weight_norm"):
        assert res_full[k] == res_ext[k], k
    a = checkpoint.load(os.path.join(full, "checkpoint_last.pt"))["model"]
    b = checkpoint.load(os.path.join(short, "checkpoint_last.pt"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    read = lambda d: [json.loads(x) for x in open(os.path.join(d, "metrics.jsonl"))]  # noqa: E731
    assert _strip(read(full)) == _strip(read(short))
    # the shorter run's results are kept; config.json holds the new budget and the extension
    assert json.load(open(os.path.join(short, "results_16.json")))["epochs"] == 2
    assert os.path.exists(os.path.join(short, "eval_test_16.jsonl"))
    cfg = json.load(open(os.path.join(short, "config.json")))
    assert cfg["config"]["max_epoch"] == 4 and [e["from"] for e in cfg["extended"]] == [16]
    with pytest.raises(UserError, match="smaller"):
        train.train_predictor(_train_args(tiny_fonts, denoiser_run, short, "composed", "--extend", "--max-epoch", "3"))


def test_a_changed_setting_is_refused_with_its_keys_or_retrained_with_overwrite(tiny_fonts, denoiser_run, tmp_path,
                                                                                 caplog):
    """The one rule of both experiments, before any "finished" shortcut: a finished run rerun with another
    setting is refused, naming each key (old -> new) and the switch; with --overwrite the old run is moved
    aside (RUN.replaced-<time>, never deleted) and the new setting trains. The same settings stay a no-op.
    Before it trains, a stage logs every setting as it resolved them, in one block (what the runners show)."""
    import logging
    run = str(tmp_path / "direct")
    args = lambda *x: _train_args(tiny_fonts, denoiser_run, run, "direct", "--max-epoch", "1", *x)  # noqa: E731
    with caplog.at_level(logging.INFO):
        train.train_predictor(args())
    block = next(r.getMessage() for r in caplog.records if "the resolved settings" in r.getMessage())
    for cell in ("lr=0.0002", "beta1=0.5", "bn_eps=0.8", "l2=0.0001", "max_epoch=1", "method=direct"):
        assert cell in block, cell
    before = open(os.path.join(run, "results.json")).read()
    assert train.train_predictor(args())["test_mse_base"] == json.loads(before)["test_mse_base"]  # nothing to do
    with pytest.raises(UserError) as e:
        train.train_predictor(args("--l2", "0.5", "--lr", "1e-3"))
    assert "l2: 0.0001 -> 0.5" in str(e.value) and "lr: 0.0002 -> 0.001" in str(e.value)
    assert "--overwrite" in str(e.value) and "OVERWRITE=1" in str(e.value) and "--extend" not in str(e.value)
    assert open(os.path.join(run, "results.json")).read() == before  # refused: untouched
    new = train.train_predictor(args("--l2", "0.5", "--lr", "1e-3", "--overwrite"))
    aside = [d for d in os.listdir(tmp_path) if d.startswith("direct.replaced-")]
    assert len(aside) == 1 and open(tmp_path / aside[0] / "results.json").read() == before
    cfg = json.load(open(os.path.join(run, "config.json")))["config"]
    assert (cfg["l2"], cfg["lr"]) == (0.5, 1e-3) and new["test_mse_base"] != json.loads(before)["test_mse_base"]
    # the denoiser stage too, before it loads anything; a budget alone names --extend beside --overwrite
    with pytest.raises(UserError, match=r"unet_dropout: 0.5 -> 0.3.*--overwrite"):
        train.denoise(_args("denoise", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", denoiser_run,
                            "--device", "cpu", "--unet-dropout", "0.3"))
    with pytest.raises(UserError, match=r"max_epoch: 1 -> 2.*--overwrite.*--extend"):
        train.train_predictor(_train_args(tiny_fonts, denoiser_run, run, "direct", "--max-epoch", "2", "--l2", "0.5",
                                          "--lr", "1e-3"))


def _den_args(tiny_fonts, run_dir, *extra):
    return _args("denoise", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", run_dir, "--device", "cpu",
                 "--batch-size", "512", "--max-update", "14", "--curve-interval", "3", *extra)


def test_denoiser_update_budget_curve_rows_and_resume(tiny_fonts, tmp_path, monkeypatch):
    """--max-update fixes the budget in updates; the curve rows (held-out MSE every N updates against
    training seconds) continue across a kill and resume exactly as in an uninterrupted run."""
    from composed_ft.core import trainer
    full = str(tmp_path / "full")
    res = train.denoise(_den_args(tiny_fonts, full))
    assert res["updates"] == 14 and res["epochs"] == 2 and res["unet_layout"] == "authors"
    assert "train_s" in res and res["wall_s"] >= res["train_s"]
    rows = lambda d: [json.loads(x) for x in open(os.path.join(d, "metrics.jsonl"))]  # noqa: E731
    curve = [r for r in rows(full) if "curve_val_mse" in r]
    assert [r["updates"] for r in curve] == [3, 6, 9, 12]
    assert all(a["train_s"] < b["train_s"] for a, b in zip(curve, curve[1:]))

    killed = str(tmp_path / "killed")
    real = trainer.progress

    def dying(batches, desc=""):
        for i, b in enumerate(real(batches, desc=desc)):
            if desc == "epoch 2" and i == 4:
                raise KeyboardInterrupt  # after the curve point at update 12 was logged (epochs: 9 + 5 updates)
            yield b
    monkeypatch.setattr(trainer, "progress", dying)
    with pytest.raises(KeyboardInterrupt):
        train.denoise(_den_args(tiny_fonts, killed))
    monkeypatch.setattr(trainer, "progress", real)
    res2 = train.denoise(_den_args(tiny_fonts, killed))
    key = lambda rs: [(r.get("epoch"), r.get("updates"), r.get("curve_val_mse"), r.get("val_mse")) for r in rs]  # noqa: E731
    assert key(rows(killed)) == key(rows(full))
    assert res2["val_mse_denoised"] == res["val_mse_denoised"] and res2["resumed_train_s"] > 0


def test_old_denoiser_checkpoints_load_with_their_layout(denoiser_run, tmp_path):
    """A checkpoint whose config predates --unet-layout holds the pre-activation U-Net."""
    ck = checkpoint.load(os.path.join(denoiser_run, "checkpoint_best.pt"))
    assert ck["config"]["unet_layout"] == "authors"
    model, _ = train.load_denoiser(denoiser_run, torch.device("cpu"))
    assert isinstance(model, UNet)
    old = PreActUNet(8)
    ck = {"model": old.state_dict(), "config": {k: v for k, v in ck["config"].items() if k != "unet_layout"}}
    os.makedirs(tmp_path / "old")
    torch.save(ck, tmp_path / "old" / "checkpoint_best.pt")
    model, _ = train.load_denoiser(str(tmp_path / "old"), torch.device("cpu"))
    assert isinstance(model, PreActUNet) and all(not p.requires_grad for p in model.parameters())


def _cli(*argv, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, CI="1")
    return subprocess.run([sys.executable, "-m", "composed_ft.imggen", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.slow  # every stage through the CLI, minutes on 2 cores: `bash scripts/test.sh -m slow`
def test_cli_end_to_end_all_stages(tiny_fonts, tmp_path):
    runs = tmp_path / "runs"
    r = _cli("denoise", "--preset", "smoke", "--data", tiny_fonts, "--run-dir", str(runs / "denoisers/blur2"))
    assert r.returncode == 0, r.stderr
    for name, flags in (("direct", ["--method", "direct", "--variant", "authors"]),
                        ("composed", ["--method", "composed"]),
                        ("direct_strong", ["--method", "direct", "--variant", "strong", "--bn-eps", "1e-5",
                                           "--dropout", "0.1", "--max-epoch", "1"])):
        r = _cli("train", "--preset", "smoke", *flags, "--tag", "main", "--data", tiny_fonts,
                 "--denoiser", str(runs / "denoisers/blur2"), "--run-dir", str(runs / f"main/{name}-s0"))
        assert r.returncode == 0, r.stderr
        assert "test MSE" in r.stderr
    res = json.loads((runs / "main/composed-s0/results.json").read_text())
    assert res["weight_norm"] > res["weight_norm_matrices"] > 0  # BatchNorm scales count in the non-bias norm
    # one record per test pair, whose mean is the test MSE
    recs = [json.loads(line) for line in (runs / "main/composed-s0" / train.PAIR_RECORDS).read_text().splitlines()]
    assert len(recs) == res["n_test"] and len({(r["font"], r["char"]) for r in recs}) == len(recs)
    assert abs(np.mean([r["mse_denoised"] for r in recs]) - res["test_mse_denoised"]) < 1e-5
    assert 0 < res["test_spread_base"] and 0.5 < res["test_spread_truth"] < 1.1
    # the sample grid carries its panels' layout, so the report can cut them out
    from composed_ft.imggen.plots import read_panels
    panels = read_panels(str(runs / "main/composed-s0/samples.png"))
    assert set(panels) == {"truth", "base", "denoised", "base_stretched"} and panels["base"][1].height > 0
    out = tmp_path / "imggen.md"
    r = _cli("table", "--runs", str(runs), "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "| 2500 | Direct (authors') | BN eps 0.8, dropout 0, λ 0 |" in text
    assert "| 2500 | Direct (strongest) | BN eps 1e-05, dropout 0.1, λ 0 |" in text
    assert "| 2500 | Composed | BN eps 0.8, dropout 0.1, λ 0.0001 |" in text
    assert "better Direct = " in text and "1 seed, not resolved" in text and "Preset: smoke" in text
    assert "(detects ±" in text  # the per-test-pair comparison, from the runs' records
    assert "Wall time per tag" in text
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


def test_stretch_maps_each_image_onto_the_full_range():
    x = torch.stack([torch.full((1, 4, 4), 0.01), torch.linspace(-0.02, 0.03, 16).view(1, 4, 4)])
    y = train.stretch(x)
    assert torch.equal(y[0], torch.full((1, 4, 4), -1.0))  # a constant image stays flat
    assert y[1].min() == -1 and y[1].max() == 1 and torch.all(y[1].flatten().diff() > 0)  # order kept


def test_denormals_flag_flushes_subnormals_on_cpu_and_an_older_run_records_it(tiny_fonts, denoiser_run, tmp_path):
    """--denormals flush (the default) makes the CPU flush subnormal floats to zero, keep computes with them.
    A run begun before the flag existed (its config lacks the key) continues under it, and the run's
    config.json records from which metric row on: on resume and on extension."""
    from composed_ft.core import precision
    precision.set_denormals(torch.device("cpu"), "keep")
    tiny = torch.tensor([1e-39])  # subnormal in float32 (made while kept: flushing also zeroes the conversion)
    assert (tiny * 1.0).item() > 0
    precision.set_denormals(torch.device("cpu"), "flush")
    assert (tiny * 1.0).item() == 0
    with pytest.raises(ValueError):
        precision.set_denormals(torch.device("cpu"), "off")
    old = str(tmp_path / "old")
    train.train_predictor(_train_args(tiny_fonts, denoiser_run, old, "composed", "--max-epoch", "2",
                                      "--denormals", "keep"))
    assert json.load(open(os.path.join(old, "config.json")))["config"]["denormals"] == "keep"
    cfg_path = os.path.join(old, "config.json")
    rec = json.load(open(cfg_path))
    del rec["config"]["denormals"]  # as written before the flag existed
    json.dump(rec, open(cfg_path, "w"))
    os.remove(os.path.join(old, "results.json"))  # an unfinished run: resumed, not extended
    train.train_predictor(_train_args(tiny_fonts, denoiser_run, old, "composed", "--max-epoch", "2"))
    rec = json.load(open(cfg_path))
    assert [e["new_settings"] for e in rec["resumed"]] == [{"denormals": "flush"}]
    assert rec["resumed"][0]["metric_rows"] > 0 and "denormals" not in rec["config"]
    train.train_predictor(_train_args(tiny_fonts, denoiser_run, old, "composed", "--max-epoch", "3", "--extend"))
    rec = json.load(open(cfg_path))
    assert "new_settings" not in rec["extended"][0] and len(rec["resumed"]) == 1  # recorded once
    precision.set_denormals(torch.device("cpu"), "keep")
