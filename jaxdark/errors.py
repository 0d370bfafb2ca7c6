"""Exceptions for input a user can fix; the CLI prints them as one line."""


class JaxdarkError(Exception):
    """Base class: bad input (a file, a value), reported as a single line."""


class CheckpointError(JaxdarkError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class RawFileError(JaxdarkError):
    """A RAW file that cannot be read or is not a supported Bayer mosaic."""


class ModelError(JaxdarkError):
    """An unknown model name or a size the chosen model does not take."""
