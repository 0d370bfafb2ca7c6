"""``jaxdark convert SRC DST``: PyTorch checkpoint -> jaxdark orbax checkpoint."""

from __future__ import annotations

import argparse

from jaxdark.convert import load_torch_model, save_converted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark convert``."""
    parser.add_argument("src", help="PyTorch checkpoint (e.g. the official weights.pth)")
    parser.add_argument("dst", help="directory to create for the converted checkpoint")


def run(args: argparse.Namespace) -> int:
    """Convert ``args.src`` to ``args.dst`` and print what was written."""
    model = load_torch_model(args.src)
    meta = save_converted(model, args.dst, source=args.src)
    print(
        f"wrote {args.dst}: {meta['param_count']:,} parameters, "
        f"config {meta['model_config']}, source sha256 {meta['source_sha256']}"
    )
    return 0
