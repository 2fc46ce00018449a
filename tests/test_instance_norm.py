"""The channels-last instance norm + activation kernel (composed_ft/imggen/instance_norm.py): torch's group norm
with one channel per group, then ReLU / LeakyReLU, forward and input gradient, up to float rounding."""
import shutil

import pytest
import torch
import torch.nn.functional as F

from composed_ft.imggen import instance_norm
from composed_ft.imggen.models import FrozenUNet, UNet


def test_the_kernel_builds_where_a_compiler_is():
    # CI installs g++ (and so cc): there the kernel must be in use, not silently replaced by the fallback
    assert instance_norm.available() == bool(shutil.which("cc"))


def reference(x, slope, eps=1e-5):
    y = F.group_norm(x, x.shape[1], eps=eps)
    return F.leaky_relu(y, slope) if slope else F.relu(y)


@pytest.mark.skipif(not instance_norm.available(), reason="no C compiler")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("slope", [0.0, 0.2])
@pytest.mark.parametrize("shape,strided_grad", [((5, 16, 16, 16), True), ((7, 32, 8, 8), False), ((3, 5, 3, 1), True)])
def test_matches_group_norm_and_activation(threads, slope, shape, strided_grad):
    """Values and input gradients against torch's ops, at 1 and 2 threads (batch items split unevenly), with the
    output's gradient either a channel slice of a concatenation's gradient (what the U-Net's skips hand back) or
    NCHW-contiguous (copied to channels last first)."""
    torch.manual_seed(0)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        B, C, H, W = shape
        x = (torch.randn(shape) * 3 + 1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        if strided_grad:
            g = torch.randn(B, 2 * C, H, W).contiguous(memory_format=torch.channels_last)[:, C:]
        else:
            g = torch.randn(shape)
        y0 = reference(x, slope)
        g0, = torch.autograd.grad(y0, x, g)
        y1 = instance_norm.instance_norm_act(x, 1e-5, slope)
        g1, = torch.autograd.grad(y1, x, g)
    finally:
        torch.set_num_threads(saved)
    assert y1.is_contiguous(memory_format=torch.channels_last) and y1.shape == x.shape
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-5)
    # the statistics are per item and channel: a constant shift of one channel of one item changes nothing
    x2 = x.detach().clone()
    x2[1, 0] += 7.0
    torch.testing.assert_close(instance_norm.instance_norm_act(x2, 1e-5, slope), y1.detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not instance_norm.available(), reason="no C compiler")
def test_nchw_input_is_taken_and_bad_input_refused():
    x = torch.randn(2, 3, 4, 4)  # NCHW: copied to channels last
    torch.testing.assert_close(instance_norm.instance_norm_act(x, 1e-5, 0.2), reference(x, 0.2), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="float32"):
        instance_norm.instance_norm_act(x.double())


def test_frozen_unet_falls_back_to_group_norm(monkeypatch):
    """Without the kernel (no compiler, or CFT_NATIVE_NORM=0) FrozenUNet computes the same function with
    torch's group norm; with it, the same numbers up to rounding."""
    torch.manual_seed(0)
    fast = FrozenUNet(UNet(width=8), channels_last=True)
    x, g = torch.rand(4, 1, 32, 32) * 2 - 1, torch.randn(4, 1, 32, 32)
    outs = []
    for native in (True, False):
        monkeypatch.setattr(instance_norm, "_LIB", [] if native else [None])
        xi = x.clone().requires_grad_(True)
        y = fast(xi)
        outs.append((y, torch.autograd.grad(y, xi, g)[0]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-5 * outs[1][1].abs().max().item())
    monkeypatch.setattr(instance_norm, "_LIB", [])
    monkeypatch.setenv("CC", "/nonexistent/cc")  # no compiler: a warning, then the fallback
    assert not instance_norm.available()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("CFT_NATIVE_NORM", "0")
    monkeypatch.setattr(instance_norm, "_LIB", [])
    assert not instance_norm.available()
