"""The two networks of the font experiment (PAPER.md, Experiment 1).

MLPGenerator: the base predictor f: (font id, char id) -> 1 x S x S image in [-1, 1].
UNet: the denoiser Π: a small pix2pix-style U-Net mapping a perturbed glyph to a clean one."""
import torch
from torch import nn

N_CHARS = 62


class MLPGenerator(nn.Module):
    """Embeddings (char 62-d, font 100-d) -> MLP 162→128→256→256→512→512→1024 -> S*S, tanh.

    BatchNorm on every hidden block but the first, LeakyReLU(0.2), dropout on the last two hidden
    blocks (the paper's regularization ablation)."""

    def __init__(self, n_fonts=100, image_size=32, dropout=0.0, font_dim=100, char_dim=62,
                 hidden=(128, 256, 256, 512, 512, 1024)):
        super().__init__()
        self.image_size = image_size
        self.font_emb = nn.Embedding(n_fonts, font_dim)
        self.char_emb = nn.Embedding(N_CHARS, char_dim)
        layers, d = [], font_dim + char_dim
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(d, h))
            if i > 0:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.LeakyReLU(0.2))
            if dropout > 0 and i >= len(hidden) - 2:
                layers.append(nn.Dropout(dropout))
            d = h
        layers += [nn.Linear(d, image_size * image_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, font, char):
        h = torch.cat([self.char_emb(char), self.font_emb(font)], dim=1)
        return self.net(h).view(-1, 1, self.image_size, self.image_size)


class Upsample2x(nn.Module):
    """Nearest-neighbour 2x upsampling as expand + reshape. Same values as nn.Upsample(2), but
    torch's CPU upsample kernel spent over a third of the U-Net's step copying between memory
    formats (measured with torch.profiler); a broadcast view costs one contiguous copy."""

    def forward(self, x):
        B, C, H, W = x.shape
        return x[:, :, :, None, :, None].expand(B, C, H, 2, W, 2).reshape(B, C, 2 * H, 2 * W)


class UNet(nn.Module):
    """Three strided-conv down blocks (1→w→2w→2w, the last the bottleneck), two transposed-conv up
    blocks with skip connections, InstanceNorm, LeakyReLU down / ReLU up, dropout 0.5 in the inner
    up block, then upsample + conv + tanh. The paper's width is w = 64."""

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
