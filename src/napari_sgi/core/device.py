"""Which torch device a fit runs on."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` picks CUDA when torch sees a GPU, otherwise the CPU.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA GPU")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    return device
