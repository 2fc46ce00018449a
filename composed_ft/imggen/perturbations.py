"""Synthetic perturbations that turn clean glyphs into the denoiser's inputs.

All work on batches of images in [-1, 1] (background -1, ink +1), shape [B, 1, S, S], in torch,
on the batch's device. Random parameters are drawn afresh for every sample each time a batch is
perturbed, from the torch RNG (which the trainer checkpoints, so resumed runs see the same noise)."""
import math

import torch
import torch.nn.functional as F


def gaussian_blur(x, sigma):
    """Blur each image with its own Gaussian std `sigma` ([B] tensor; 0 = unchanged).

    Separable, one grouped conv per axis; the kernel is sized for the largest sigma in the batch
    (capped at the image size) and padded by replication (the background is constant)."""
    B, C, H, W = x.shape
    smax = float(sigma.max())
    if smax <= 0:
        return x
    r = min(int(math.ceil(3 * smax)), H - 1)
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-6).view(B, 1)
    k = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    k = torch.where(sigma.view(B, 1) > 0, k, (t.view(1, -1) == 0).to(x.dtype))  # sigma 0: identity
    k = k / k.sum(1, keepdim=True)
    k = k.repeat_interleave(C, 0)  # [B*C, 2r+1]
    y = x.reshape(1, B * C, H, W)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(B * C, 1, 1, -1), groups=B * C)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(B * C, 1, -1, 1), groups=B * C)
    return y.view(B, C, H, W)


def blur(x, max_radius=2.0):
    """Gaussian blur with radius (std, as PIL's GaussianBlur) uniform in [0, max_radius] per sample."""
    return gaussian_blur(x, torch.rand(x.shape[0], device=x.device) * max_radius)


def contrast(x, factor=0.5):
    """Contrast reduction as PIL's ImageEnhance.Contrast: blend each image toward its mean gray."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + factor * (x - mean)


# PIL's EMBOSS kernel is [[-1,0,0],[0,1,0],[0,0,0]] in its own orientation; measured on an impulse,
# it computes out[y, x] = p[y, x] - p[y+1, x-1] + 128, i.e. this cross-correlation kernel:
_EMBOSS = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def emboss(x):
    """PIL's EMBOSS filter: a diagonal difference plus a mid-gray offset, clipped to the valid range."""
    k = _EMBOSS.to(x).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    # On 0..255 pixels p = 127.5 (x + 1): out = p - p_dl + 128  ->  x_out = x - x_dl + 0.5/127.5
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])
    return (y + 0.5 / 127.5).clamp(-1, 1)


def make(name, blur_max=2.0, contrast_factor=0.5):
    """A perturbation function by name: blur | contrast | emboss."""
    if name == "blur":
        return lambda x: blur(x, blur_max)
    if name == "contrast":
        return lambda x: contrast(x, contrast_factor)
    if name == "emboss":
        return emboss
    raise ValueError(f"unknown perturbation {name!r} (blur, contrast, emboss)")


NAMES = ("blur", "contrast", "emboss")
