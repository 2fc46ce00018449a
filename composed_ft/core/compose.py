"""Freezing a pre-trained denoiser and composing it after a base predictor.

The denoiser Π is never updated: its parameters have requires_grad=False (so autograd builds no
weight-gradient work for it, and an optimizer built from `composed.parameters()` that filters on
requires_grad never sees it), and it stays in eval mode even when the composed model is put in
train mode (its dropout and normalization statistics must be those it was trained with)."""
import torch
from torch import nn


def freeze(module):
    module.requires_grad_(False)
    module.eval()
    return module


class Composed(nn.Module):
    """Π(f(x)) with f trainable and Π frozen."""

    def __init__(self, base, denoiser):
        super().__init__()
        self.base = base
        self.denoiser = freeze(denoiser)

    def train(self, mode=True):
        super().train(mode)
        self.denoiser.eval()  # frozen for real: dropout off, running stats fixed
        return self

    def forward(self, *args, **kwargs):
        return self.denoiser(self.base(*args, **kwargs))

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]


def l2_penalty(params):
    """Σ‖W‖² over the given tensors, as one fused op (no Python loop of small reductions)."""
    if not params:
        return torch.zeros(())
    return torch.stack(torch._foreach_norm(params, 2.0)).pow(2).sum()


def weight_params(module):
    """f's non-bias weights: every trainable parameter with more than one dimension
    (linear/conv weights and embeddings), excluding biases and normalization scales."""
    return [p for p in module.parameters() if p.requires_grad and p.dim() > 1]


def nonbias_params(module):
    """Every trainable parameter of `module` but its biases: weights, embeddings and normalization
    scales. The authors' imggen L2 penalty sums over exactly these (`'bias' not in name`)."""
    return [p for name, p in module.named_parameters() if p.requires_grad and not name.endswith("bias")]
