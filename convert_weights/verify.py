"""Compare jaxdark with our PyTorch reference network on random inputs.

    python -m convert_weights.verify CHECKPOINT [--size HxW] [--batch N] [--seed S]

CHECKPOINT is a reference PyTorch file (read on the PyTorch side by ``torch.load`` and
on the jaxdark side by our own reader, so the two paths are independent) or a
directory written by ``jaxdark convert``. Prints the parameter count and the max and
mean |jaxdark - PyTorch|; exits 1 if the max exceeds ``--tol``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (multiples of 32) -> (H, W); an argparse type."""
    from jaxdark.cli.flags import parse_hw

    return parse_hw(text, multiple=32)


def torch_state_dict(path: Path, model) -> dict:
    """The reference state dict for the PyTorch side."""
    import torch

    from jaxdark.weights.convert import params_to_state_dict

    if path.is_dir():
        return params_to_state_dict(model)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def compare(path: str | Path, size=(256, 384), batch: int = 1, seed: int = 0) -> dict:
    """Run both implementations on the same random input; return the statistics."""
    import jax
    import jax.numpy as jnp
    import torch

    from convert_weights.reference_torch import reference_from_state_dict
    from jaxdark import load_model
    from jaxdark.models.lamba2021 import count_params

    path = Path(path)
    model = load_model(path)
    net = reference_from_state_dict(torch_state_dict(path, model))
    x = np.random.default_rng(seed).random((batch, 1, *size), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    # true float32 products: on GPUs and TPUs XLA's default precision is lower (TF32-like)
    with jax.default_matmul_precision("highest"):
        ours = jax.jit(lambda m, v: m(v))(model, jnp.asarray(x.transpose(0, 2, 3, 1)))
    ours = np.asarray(ours)
    diff = np.abs(ours - ref)
    return {
        "params": count_params(model),
        "torch_params": sum(p.numel() for p in net.parameters()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "shape": ours.shape,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--size", type=parse_size, default=(256, 384), help="HxW, multiples of 32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    from jaxdark.errors import JaxdarkError

    try:
        r = compare(args.checkpoint, args.size, args.batch, args.seed)
    except (JaxdarkError, FileNotFoundError, ValueError) as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return 2
    print(f"parameters (jaxdark): {r['params']:,}")
    print(f"parameters (PyTorch): {r['torch_params']:,}")
    print(f"output shape:         {r['shape']}")
    print(f"max |jaxdark - PyTorch|:  {r['max_abs_diff']:.3e}")
    print(f"mean |jaxdark - PyTorch|: {r['mean_abs_diff']:.3e}")
    ok = r["max_abs_diff"] <= args.tol
    print("PASS" if ok else f"FAIL (tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
