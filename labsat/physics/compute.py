"""Where the physics models compute: the torch device simulators and twins place their tensors on."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """CUDA when present (and not disabled with ``LABSAT_DEVICE=cpu``), else the CPU."""
    wanted = os.environ.get("LABSAT_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def functorch_active() -> bool:
    """Whether a ``torch.func`` transform is running (the test ``Function.apply`` itself makes)."""
    probe = getattr(torch._C, "_are_functorch_transforms_active", None)
    return True if probe is None else bool(probe())
