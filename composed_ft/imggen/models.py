"""The two networks of the font experiment (PAPER.md, Experiment 1).

MLPGenerator: the base predictor f: (font id, char id) -> 1 x S x S image in [-1, 1].
UNet: the denoiser Π, the authors' small pix2pix-style U-Net (conv -> norm -> activation).
PreActUNet: the layout this project used before (activation -> conv -> norm), kept so that its
denoiser checkpoints still load and its results can be redone (`--unet-layout preact`)."""
import torch
import torch.nn.functional as F
from torch import nn

from . import instance_norm

N_CHARS = 62

# The authors build every BatchNorm of f as `BatchNorm1d(n, 0.8)`, i.e. eps = 0.8 (PAPER.md). With
# eps 1e-5 each hidden Linear is followed by a normalization that makes f invariant to rescaling its
# weights, so an L2 penalty cannot make f simpler; eps 0.8 breaks that invariance.
AUTHORS_BN_EPS = 0.8


class MLPGenerator(nn.Module):
    """Embeddings (char 62-d, font 100-d) -> MLP 162→128→256→256→512→512→1024 -> S*S, tanh.

    BatchNorm (eps `bn_eps`) on every hidden block but the first, LeakyReLU(0.2), dropout on the
    last two hidden blocks (the paper's regularization ablation)."""

    def __init__(self, n_fonts=100, image_size=32, dropout=0.0, font_dim=100, char_dim=62,
                 hidden=(128, 256, 256, 512, 512, 1024), bn_eps=AUTHORS_BN_EPS):
        super().__init__()
        self.image_size = image_size
        self.font_emb = nn.Embedding(n_fonts, font_dim)
        self.char_emb = nn.Embedding(N_CHARS, char_dim)
        layers, d = [], font_dim + char_dim
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(d, h))
            if i > 0:
                layers.append(nn.BatchNorm1d(h, eps=bn_eps))
            layers.append(nn.LeakyReLU(0.2))
            if dropout > 0 and i >= len(hidden) - 2:
                layers.append(nn.Dropout(dropout))
            d = h
        layers += [nn.Linear(d, image_size * image_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, font, char):
        h = torch.cat([self.char_emb(char), self.font_emb(font)], dim=1)
        return self.net(h).view(-1, 1, self.image_size, self.image_size)


class _Upsample2x(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        B, C, H, W = x.shape
        return x[:, :, :, None, :, None].expand(B, C, H, 2, W, 2).reshape(B, C, 2 * H, 2 * W)

    @staticmethod
    def backward(ctx, g):
        # each input pixel feeds a 2x2 block: its gradient is the block's sum. autograd's own backward
        # of expand sums over a strided view, ~4x slower than the pooling kernel (measured)
        return F.avg_pool2d(g, 2) * 4


class Upsample2x(nn.Module):
    """Nearest-neighbour 2x upsampling as expand + reshape. Same values as nn.Upsample(2), but
    torch's CPU upsample kernel spent over a third of the U-Net's step copying between memory
    formats (measured with torch.profiler); a broadcast view costs one contiguous copy."""

    def forward(self, x):
        return _Upsample2x.apply(x)


class PaddedConv(nn.Conv2d):
    """The authors' output conv: ZeroPad2d((1, 0, 1, 0)) then Conv2d(c, 1, 4, padding=1), i.e. two
    zero rows/columns of padding at the top/left and one at the bottom/right. Computed as padding 2
    on every side and the last output row and column dropped: the same numbers, without
    materializing (and back-propagating through) a padded copy of the 2w-channel input."""

    def __init__(self, c_in, c_out=1):
        super().__init__(c_in, c_out, 4, 1, 2)

    def forward(self, x):
        return super().forward(x)[..., :-1, :-1]


def _phase_map():
    """M[p, i, j, ky, kx] = 1 where tap (ky, kx) of the 4x4 conv above, applied to a nearest-2x-upsampled
    input, reads the low-resolution pixel at offset (i - 1, j - 1) for the output phase p = 2a + b (the
    output pixel (2y + a, 2x + b)). Output row 2y + a, tap ky reads upsampled row 2y + a + ky - 2, i.e.
    low-resolution row y + floor((a + ky - 2) / 2), an offset in {-1, 0, 1}; columns alike."""
    m = torch.zeros(4, 3, 3, 4, 4)
    for a in range(2):
        for b in range(2):
            for ky in range(4):
                for kx in range(4):
                    m[2 * a + b, (a + ky - 2) // 2 + 1, (b + kx - 2) // 2 + 1, ky, kx] = 1
    return m


class UpsampleConv(PaddedConv):
    """Nearest 2x upsampling followed by PaddedConv, computed without the upsampled tensor: each of the
    four output phases (2y + a, 2x + b) is a 3x3 conv of the low-resolution input whose taps are sums of
    the 4x4 kernel's (`_phase_map`), and pixel_shuffle interleaves the phases. Same parameters (a 4x4
    kernel, so checkpoints and the authors' layout are unchanged), the same numbers up to float rounding
    (tested against nn.Upsample -> ZeroPad2d -> Conv2d), forward and gradients; ~4x less work than the
    32x32 conv over 2w channels, which took most of the frozen U-Net's time in the composed step
    (scripts/bench_imggen.py)."""

    def __init__(self, c_in, c_out=1):
        super().__init__(c_in, c_out)
        self.register_buffer("phase_map", _phase_map(), persistent=False)

    def forward(self, x):  # x: the half-resolution input (B, c_in, S/2, S/2) -> (B, c_out, S, S)
        k = torch.einsum("pijyx,ocyx->opcij", self.phase_map, self.weight).flatten(0, 1)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.pixel_shuffle(F.conv2d(x, k, bias, padding=1), 2)


def _down(c_in, c_out, norm=True, dropout=0.0):
    """Strided 4x4 conv (no bias: a norm follows, or the authors left it out) -> [InstanceNorm] ->
    LeakyReLU(0.2) -> [dropout]: halves the resolution."""
    layers = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.InstanceNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _up(c_in, c_out, dropout=0.0):
    """Transposed 4x4 conv -> InstanceNorm -> ReLU -> [dropout]: doubles the resolution."""
    layers = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.InstanceNorm2d(c_out), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """The authors' layout (PAPER.md): blocks are conv -> norm -> activation.

    down1 1→w (no norm), down2 w→2w, bottleneck 2w→2w (no norm, dropout), up1 2w→2w (dropout) with
    the skip of down2, up2 4w→w (dropout) with the skip of down1, then nearest upsample, a
    one-pixel zero pad at the top and left, a 4x4 conv (padding 1) to one channel and tanh. Dropout (0.5) sits
    in three places: the bottleneck and both up blocks. The paper's width is w = 64."""

    layout = "authors"

    def __init__(self, width=64, dropout=0.5):
        super().__init__()
        w = width
        self.down1 = _down(1, w, norm=False)                          # S -> S/2
        self.down2 = _down(w, 2 * w)                                  # -> S/4
        self.bottleneck = _down(2 * w, 2 * w, norm=False, dropout=dropout)  # -> S/8
        self.up1 = _up(2 * w, 2 * w, dropout=dropout)                 # -> S/4
        self.up2 = _up(4 * w, w, dropout=dropout)                     # -> S/2
        # S/2 -> S: nearest upsample, then a 4x4 conv that keeps size S (PaddedConv), both in UpsampleConv;
        # the Identity holds the upsample's place so the conv's parameters keep their checkpoint key out.1.*
        self.out = nn.Sequential(nn.Identity(), UpsampleConv(2 * w), nn.Tanh())

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        b = self.bottleneck(d2)
        u1 = torch.cat([self.up1(b), d2], 1)
        u2 = torch.cat([self.up2(u1), d1], 1)
        return self.out(u2)


class PreActUNet(nn.Module):
    """This project's earlier layout: activation -> conv -> norm, dropout 0.5 only in the inner up
    block, 3x3 output conv. Same sizes and skips as UNet."""

    layout = "preact"

    def __init__(self, width=64, dropout=0.5):
        super().__init__()
        w = width
        self.down1 = nn.Conv2d(1, w, 4, 2, 1)                                   # S -> S/2
        self.down2 = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(w, 2 * w, 4, 2, 1),
                                   nn.InstanceNorm2d(2 * w))                    # -> S/4
        self.bottleneck = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(2 * w, 2 * w, 4, 2, 1))  # -> S/8
        self.up1 = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1),
                                 nn.InstanceNorm2d(2 * w), nn.Dropout(dropout))  # -> S/4
        self.up2 = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(4 * w, w, 4, 2, 1),
                                 nn.InstanceNorm2d(w))                          # -> S/2
        self.out = nn.Sequential(nn.ReLU(), Upsample2x(), nn.Conv2d(2 * w, 1, 3, 1, 1), nn.Tanh())  # -> S

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        b = self.bottleneck(d2)
        u1 = self.up1(b)
        u2 = self.up2(torch.cat([u1, d2], 1))
        return self.out(torch.cat([u2, d1], 1))


UNET_LAYOUTS = {"authors": UNet, "preact": PreActUNet}


def make_unet(width=64, dropout=0.5, layout="authors"):
    return UNET_LAYOUTS[layout](width, dropout)


def _s2d_kernel(w):
    """The weight of a 4x4 stride-2 conv (padding 1) as the 2x2 stride-1 conv of the space-to-depth input
    (`pixel_unshuffle` of the input padded by one): tap (2a + p, 2b + q) of input channel c becomes tap (a, b)
    of channel 4c + 2p + q. (o, c, 4, 4) -> (o, 4c, 2, 2)."""
    o, c = w.shape[:2]
    return w.reshape(o, c, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(o, 4 * c, 2, 2)


class FrozenUNet(nn.Module):
    """The frozen authors' UNet (eval mode, no weight gradients) computed faster for the composed step, the
    same function up to float rounding (tests/test_imggen.py checks outputs and input gradients):
    - down1 (1 -> w channels, 4x4 stride 2) as a 2x2 conv over the space-to-depth input: its input gradient
      has 4 output channels instead of 1, which oneDNN's kernels compute several times faster (profiled:
      the 1-channel input gradient took 8 ms of a ~140 ms update on one thread);
    - the output block's phase kernel (UpsampleConv) computed once, not per step, and in a memory format
      that does not make the conv copy its input to channels_last and back (profiled: an einsum result
      with channels_last strides cost two copies of the 2w x S/2 x S/2 input, ~9 ms per update);
    - `channels_last`: every conv in NHWC (oneDNN's faster kernels at these channel counts), InstanceNorm and
      its activation as one C kernel each way on a CPU in float32 (instance_norm.py; elsewhere a group norm with
      one channel per group: layout-preserving, the same statistics), and the
      space-to-depth / depth-to-space steps as one reshape each (torch's pixel (un)shuffle is slow on NHWC).
    The derived kernels are recomputed whenever a weight changes (a checkpoint loaded into the model);
    the state dict is the UNet's own (same keys), so checkpoints of Composed runs are unchanged."""

    def __init__(self, unet, channels_last=False):
        super().__init__()
        if getattr(unet, "layout", None) != "authors":
            raise ValueError("FrozenUNet computes the authors' layout only")
        for name, child in unet.named_children():
            self.add_module(name, child)
        self.layout = unet.layout
        self.channels_last = channels_last
        self.requires_grad_(False)
        self.eval()
        self._derived, self._versions = None, None

    def train(self, mode=True):
        return super().train(False)  # frozen: dropout off, always

    def _kernels(self):
        params = (self.down1[0].weight, self.down2[0].weight, self.bottleneck[0].weight, self.up1[0].weight,
                  self.up2[0].weight, self.out[1].weight, self.out[1].bias)
        versions = tuple((p.data_ptr(), p._version) for p in params)
        if versions != self._versions:
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            conv = self.out[1]
            with torch.no_grad():
                k = torch.einsum("pijyx,ocyx->opcij", conv.phase_map, conv.weight).flatten(0, 1)
                self._derived = {
                    "down1": _s2d_kernel(self.down1[0].weight).contiguous(memory_format=fmt),
                    "down2": self.down2[0].weight.contiguous(memory_format=fmt),
                    "bottleneck": self.bottleneck[0].weight.contiguous(memory_format=fmt),
                    "up1": self.up1[0].weight.contiguous(memory_format=fmt),
                    "up2": self.up2[0].weight.contiguous(memory_format=fmt),
                    "out": k.contiguous(memory_format=fmt), "out_bias": conv.bias.repeat_interleave(4)}
            self._versions = versions
        return self._derived

    def _norm_act(self, x, slope):
        """InstanceNorm (no affine) then ReLU (slope 0) or LeakyReLU(slope)."""
        eps = self.down2[1].eps
        if self.channels_last and x.device.type == "cpu" and x.dtype == torch.float32 and instance_norm.available():
            return instance_norm.instance_norm_act(x, eps, slope)  # one C kernel each way (instance_norm.py)
        # channels last elsewhere: a group norm with one channel per group (layout-preserving; F.instance_norm
        # would copy to NCHW and back; a hand-written NHWC instance norm in torch ops was slower in eager mode: ~10
        # passes over the tensor against group norm's fused kernels, measured at one thread)
        x = F.group_norm(x, x.shape[1], eps=eps) if self.channels_last else F.instance_norm(x, eps=eps)
        return F.leaky_relu(x, slope) if slope else F.relu(x)

    def forward(self, x):
        k = self._kernels()
        if self.channels_last:
            # space-to-depth straight into NHWC: (B, 1, S+2, S+2) -> (B, S/2+1, S/2+1, 2, 2) -> channels last
            B, _, S, _ = x.shape
            h = S // 2 + 1
            s = F.pad(x, (1, 1, 1, 1)).view(B, h, 2, h, 2).permute(0, 1, 3, 2, 4).reshape(B, h, h, 4)
            s = s.permute(0, 3, 1, 2)
        else:
            s = F.pixel_unshuffle(F.pad(x, (1, 1, 1, 1)), 2)
        d1 = F.leaky_relu(F.conv2d(s, k["down1"]), 0.2)
        d2 = self._norm_act(F.conv2d(d1, k["down2"], None, 2, 1), 0.2)
        b = F.leaky_relu(F.conv2d(d2, k["bottleneck"], None, 2, 1), 0.2)
        u1 = torch.cat([self._norm_act(F.conv_transpose2d(b, k["up1"], None, 2, 1), 0.0), d2], 1)
        u2 = torch.cat([self._norm_act(F.conv_transpose2d(u1, k["up2"], None, 2, 1), 0.0), d1], 1)
        o = F.conv2d(u2, k["out"], k["out_bias"], padding=1)  # the four output phases (a, b) as channels 2a + b
        if self.channels_last:
            # depth-to-space from NHWC: (B, S/2, S/2, 2, 2) -> (B, S/2, 2, S/2, 2) = (B, 1, S, S)
            B, _, h, w = o.shape
            o = o.permute(0, 2, 3, 1).reshape(B, h, w, 2, 2).permute(0, 1, 3, 2, 4).reshape(B, 1, 2 * h, 2 * w)
        else:
            o = F.pixel_shuffle(o, 2)
        return torch.tanh(o)


