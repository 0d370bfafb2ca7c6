"""jaxdark command line: convert checkpoints, restore RAW files, run the demo.

Each subcommand lives in its own module, which provides ``add_arguments(parser)``
and ``run(args) -> int``; this file only wires them together. Errors a user can
fix (bad files, bad values) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jaxdark.cli.flags import console_logging
from jaxdark.errors import JaxdarkError, one_line

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("jaxdark.cli.convert", "convert a PyTorch checkpoint to a jaxdark (orbax) one"),
    "restore": ("jaxdark.cli.restore", "restore dark RAW files to sRGB images"),
    "video": ("jaxdark.cli.video", "restore a sequence of dark RAW frames into an H.264 MP4"),
    "demo": ("jaxdark.cli.demo", "restore a photo made extremely dark (a real DNG) and compare"),
    "export": ("jaxdark.cli.export", "export the network to ONNX or StableHLO"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported (startup stays fast)."""
    parser = argparse.ArgumentParser(prog="jaxdark", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxdark`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(command).parse_args(argv)
    console_logging(sys.stderr, exclusive=False)
    try:
        return int(args._run(args) or 0)
    except (JaxdarkError, OSError, ValueError) as e:  # bad input, paths, permissions
        print(f"jaxdark {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxdark {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
