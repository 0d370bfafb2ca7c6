"""The zoo's input check, shared by its networks: one-line errors for a bad input shape."""

from __future__ import annotations


def check_input(shape: tuple[int, ...], multiple: int, model: str) -> None:
    """Raise a one-line ValueError unless ``shape`` is (B, H, W, 1) with H and W positive
    multiples of ``multiple``; ``model`` names the network in the message."""
    if len(shape) != 4 or shape[-1] != 1:
        raise ValueError(f"{model}: expected input of shape (B, H, W, 1), got {tuple(shape)}")
    h, w = shape[1], shape[2]
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise ValueError(
            f"{model}: input height and width must be positive multiples of {multiple}, got "
            f"{h}x{w} (pad the mosaic first, as jaxdark.Restorer does)"
        )
