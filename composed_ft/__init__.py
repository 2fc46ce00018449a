"""Composed fine-tuning (Xie, Ma, Liang, ICML 2021): freeze a pre-trained denoiser, train through it."""
__version__ = "0.1.0"
