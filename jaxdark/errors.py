"""Exceptions for input a user can fix; the CLI prints them as one line."""


class JaxdarkError(Exception):
    """Base class: bad input (a file, a value), reported as a single line."""


class CheckpointError(JaxdarkError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class RawFileError(JaxdarkError):
    """A RAW file that cannot be read or is not a supported Bayer mosaic."""


def one_line(text: str, limit: int = 200) -> str:
    """``text`` as a single line of at most ``limit`` characters (for wrapped messages)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def show_path(path: object) -> str:
    """A path as it may appear in a one-line message: control characters escaped."""
    text = str(path)
    if text.isprintable():
        return text
    return ascii(text)[1:-1]
