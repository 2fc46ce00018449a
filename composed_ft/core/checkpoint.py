"""Atomic checkpoints that carry their config, and loading with clear errors."""
import os
import pickle
import zipfile

import torch

from .errors import UserError
from .io import atomic_path


def save(path, state):
    """state: one dict (model, optimizer, scheduler, rng, epoch, config, ...). Written atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path, map_location="cpu"):
    if not os.path.exists(path):
        raise UserError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise UserError(f"{path}: corrupt or unreadable checkpoint ({type(e).__name__}: {str(e)[:120]})") from None


def load_model_state(model, state_dict, path):
    """load_state_dict with one readable error instead of a page of size mismatches."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        first = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:3]
        raise UserError(f"{path}: checkpoint does not fit this model ({type(model).__name__}): "
                        + "; ".join(first)) from None
