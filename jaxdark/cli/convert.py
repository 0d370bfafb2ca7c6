"""``jaxdark convert SRC DST``: PyTorch checkpoint -> jaxdark orbax checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxdark.fileio import check_writable_dir
from jaxdark.weights.convert import save_converted
from jaxdark.weights.load import load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark convert``."""
    parser.add_argument(
        "src", help="PyTorch checkpoint (e.g. the official weights.pth) or a training run"
    )
    parser.add_argument("dst", help="directory to create for the converted checkpoint")


def run(args: argparse.Namespace) -> int:
    """Convert ``args.src`` to ``args.dst`` and print what was written."""
    check_writable_dir(Path(args.dst).absolute().parent, "destination of")
    model = load_model(args.src)
    meta = save_converted(model, args.dst, source=args.src)
    print(
        f"wrote {args.dst}: {meta['param_count']:,} parameters, "
        f"config {meta['model_config']}, source sha256 {meta['source_sha256']}"
    )
    return 0
