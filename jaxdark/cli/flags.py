"""Flag helpers: of the absl entry points (train.py, eval.py) the extra check, one-line flag
errors and console logging; for argparse scripts (benchmarks, convert_weights.verify) the
``HxW`` size type `parse_hw`.

absl reports its own flag errors tidily, but a ``--config.FIELD=VALUE`` naming a field the
config does not have escapes from ml_collections as a multi-line traceback, and a config
file that is missing or broken gives chained tracebacks. This parser turns every flag
error into ``PROG: error: ...`` on one line and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable

from jaxdark.errors import JaxdarkError, one_line


def parse_hw(
    text: str, *, multiple: int = 1, named: dict[str, tuple[int, int]] | None = None
) -> tuple[int, int]:
    """``"HxW"`` (or a key of ``named``, any case) -> (H, W), both positive multiples of
    ``multiple``; an `argparse.ArgumentTypeError` naming the value otherwise."""
    key = text.strip().lower()
    if named and key in named:
        return named[key]
    try:
        h, w = (int(v) for v in key.split("x"))
    except ValueError:
        choices = ", ".join(named) + " or " if named else ""
        raise argparse.ArgumentTypeError(
            f"size must be {choices}HxW such as 512x768, got {text!r}"
        ) from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    if h % multiple or w % multiple:
        raise argparse.ArgumentTypeError(
            f"height and width must be multiples of {multiple}, got {h}x{w}"
        )
    return h, w


def require_train_extra(prog: str) -> None:
    """Exit with one line and status 2 unless the ``train`` extra is installed."""
    from jaxdark.extras import require_extra

    try:
        require_extra("train", prog)
    except JaxdarkError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)


def _flag_error_text(error: BaseException) -> str:
    text = str(error)
    if "Failed loading config file" in text:  # ml_collections: the file, then the reason
        tried = re.findall(r"Attempted \[[^\]]*\]:\s*(\S+)\s*(.*)", text)
        if tried:
            path, reason = tried[0]
            return " ".join(f"cannot load the config file {path}: {reason.strip()}".split())
    if isinstance(error, AttributeError | KeyError):  # unknown config field
        text = text.replace("\\n", " ").replace("\\'", "'")
        unknown = re.search(r"'([A-Za-z_][\w.]*)'", text)
        hint = re.search(r'Did you mean "([\w.]+)"', text)
        if unknown:
            text = f"the config has no field {unknown.group(1)!r}"
            if hint:
                text += f" (did you mean {hint.group(1)!r}?)"
    cause = error.__cause__ or error.__context__
    if isinstance(error, Exception) and "config" in text.lower() and cause is not None:
        text = f"{text.rstrip('.')}: {one_line(cause)}"
    return " ".join(text.split())


def make_flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
    """A ``flags_parser`` for ``absl.app.run`` that reports bad flags on one line."""
    from absl import flags

    def parse(argv: list[str]) -> list[str]:
        try:
            rest = flags.FLAGS(argv)
            config = flags.FLAGS["config"].value if "config" in flags.FLAGS else None
            if config is not None:
                config.keys()  # ml_collections defers a config file's load error to here
            return rest
        except Exception as e:  # noqa: BLE001 - any flag or config-file error is one line
            print(f"{prog}: error: {_flag_error_text(e)}", file=sys.stderr)
            sys.exit(2)

    return parse


class _ConsoleHandler(logging.StreamHandler):
    """Prints jaxdark's records; keeps a plain console handler that a library installs on
    the root logger later (orbax's import does) from printing them a second time."""

    def emit(self, record: logging.LogRecord) -> None:
        for handler in logging.getLogger().handlers:
            if (
                type(handler) is logging.StreamHandler
                and getattr(handler, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__)
                and not getattr(handler, "_jaxdark_quiet", False)
            ):
                handler.addFilter(lambda r: not r.name.startswith("jaxdark"))
                handler._jaxdark_quiet = True  # type: ignore[attr-defined]
        super().emit(record)


def console_logging(stream=None, *, exclusive: bool = True) -> None:
    """Send jaxdark's log records (INFO and up) to ``stream`` (stdout) as plain lines.

    ``exclusive`` stops them from also reaching the root logger (absl's handler there
    would print them a second time, in its own format)."""
    logger = logging.getLogger("jaxdark")
    if any(getattr(h, "_jaxdark_console", False) for h in logger.handlers):
        return
    handler = _ConsoleHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._jaxdark_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = not exclusive
