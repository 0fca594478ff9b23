"""Which torch device a fit runs on, and what its kernels offer."""

from __future__ import annotations

__all__ = ["fused_adam", "resolve_device"]


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


def fused_adam(parameter) -> bool:
    """Whether Adam's fused kernel serves ``parameter``'s device and dtype: one call a parameter
    where the plain loop makes a dozen small ones (0.39 → 0.22 ms a step for the parameters of a
    512x512 ``default`` model, one thread).

    Examples
    --------
    >>> import torch
    >>> fused_adam(torch.zeros(3)), fused_adam(torch.zeros(3, dtype=torch.float16))
    (True, False)
    """
    import torch

    return parameter.device.type in ("cpu", "cuda") and parameter.dtype in (
        torch.float32,
        torch.float64,
    )
