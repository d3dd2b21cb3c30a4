"""The torch device of every trainer, sampler and decoder, and the number of CPU threads it runs on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from opmerge_core.basics.validation import check_int

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


@contextlib.contextmanager
def torch_threads(n: int | None = 1) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (restored afterwards; None = unchanged). Small MLPs are
    fastest on one thread, and a second thread contending with other work on a 2-core machine can be
    more than ten times slower."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(check_int(n, "threads", hi=256))
    try:
        yield
    finally:
        torch.set_num_threads(old)
