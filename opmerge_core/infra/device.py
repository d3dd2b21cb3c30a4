"""The torch device of every trainer, sampler and decoder."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → cuda when a GPU is available, else cpu; ``cuda`` without a GPU is a ValueError."""
    if isinstance(device, torch.device):
        return device
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
