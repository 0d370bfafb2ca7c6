"""``jaxdark export WEIGHTS OUT``: the network as an ONNX or StableHLO file."""

from __future__ import annotations

import argparse

from jaxdark.export.spec import DTYPES, FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark export``."""
    parser.add_argument(
        "weights",
        help="'official', a .pth checkpoint, a directory written by 'jaxdark convert', or a "
        "training run's workdir or step directory",
    )
    parser.add_argument("out", help="file to write (e.g. jaxdark.onnx, jaxdark.stablehlo)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="onnx or stablehlo (default: from OUT's extension, .onnx -> onnx, else stablehlo)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT (and its sidecar) if it exists"
    )
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="default float32")
    for name, what in (("batch", "batch size"), ("height", "height"), ("width", "width")):
        parser.add_argument(
            f"--{name}",
            type=int,
            default=None,
            metavar="N",
            help=f"static {what}"
            + (" (a multiple of 32)" if name != "batch" else "")
            + "; default dynamic",
        )


def run(args: argparse.Namespace) -> int:
    """Export ``args.weights`` to ``args.out`` and print what was written."""
    from jaxdark.export import export

    fmt = args.format or ("onnx" if str(args.out).lower().endswith(".onnx") else "stablehlo")
    result = export(
        args.weights,
        args.out,
        format=fmt,
        dtype=args.dtype,
        batch=args.batch,
        height=args.height,
        width=args.width,
        overwrite=args.overwrite,
    )
    meta = result.metadata
    shape = "(" + ", ".join(str(d) for d in meta["input_shape"]) + ")"
    size = result.path.stat().st_size / 2**20
    extra = f" and {result.sidecar}" if result.sidecar else ""
    print(
        f"wrote {result.path} ({fmt}, {args.dtype}, input {shape} NHWC, {size:.1f} MiB){extra}; "
        f"parameters sha256 {meta['parameters_sha256'][:16]}, "
        f"source sha256 {meta['source_sha256'] or 'unknown'}"
    )
    return 0
