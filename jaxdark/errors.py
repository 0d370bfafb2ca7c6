"""Exceptions for input a user can fix, and the one-line text of any error."""

from __future__ import annotations

import os


class JaxdarkError(Exception):
    """Base class: bad input (a file, a value), reported as a single line."""


class CheckpointError(JaxdarkError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class RawFileError(JaxdarkError):
    """A RAW file that cannot be read or is not a supported Bayer mosaic."""


def one_line(error: BaseException, path: str | os.PathLike | None = None) -> str:
    """The first line of ``error``'s message (its type name if empty), prefixed with
    ``path`` unless the message already starts with it. Byte-string reprs (``b'...'``,
    as LibRaw's errors come) are unwrapped; control characters in ``path`` are escaped
    so a file name holding a newline cannot split the line."""
    text = str(error).strip()
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
        text = text[2:-1]
    text = text.splitlines()[0] if text else type(error).__name__
    if path is not None:
        where = printable_path(path)
        if not text.startswith((where, str(path))):
            text = f"{where}: {text}"
    return text


def printable_path(path: str | os.PathLike) -> str:
    """``path`` as text with control characters (newlines, tabs, ...) escaped."""
    text = os.fspath(path)
    text = text.decode(errors="backslashreplace") if isinstance(text, bytes) else text
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def flatten(text: object, limit: int = 200) -> str:
    """``text`` as a single line of at most ``limit`` characters (for wrapped messages)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ModelError(JaxdarkError):
    """An unknown model name or a size the chosen model does not take."""
