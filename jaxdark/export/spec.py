"""What an export is asked for: format, dtype and input shape, checked once, up front."""

from __future__ import annotations

from dataclasses import dataclass

from jaxdark.constants import INPUT_MULTIPLE as MULTIPLE
from jaxdark.errors import JaxdarkError

FORMATS = ("onnx", "stablehlo")
DTYPES = ("float32", "float16")
MAX_DIM = 2**31 - 1  # a static size must fit the int32 sizes of XLA's shapes


class ExportError(JaxdarkError):
    """An export option or model the chosen format cannot take."""


@dataclass(frozen=True)
class ExportSpec:
    """A checked export request; ``None`` for a size means symbolic (dynamic)."""

    format: str = "onnx"
    dtype: str = "float32"
    batch: int | None = None
    height: int | None = None
    width: int | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"format {self.format!r} is not supported; expected one of {FORMATS}")
        if self.dtype not in DTYPES:
            raise ExportError(f"dtype {self.dtype!r} is not supported; expected one of {DTYPES}")
        if self.batch is not None and not _positive_int(self.batch):
            raise ExportError(
                f"batch must be a positive integer up to {MAX_DIM} or dynamic, got {self.batch!r}"
            )
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and not (_positive_int(value) and value % MULTIPLE == 0):
                raise ExportError(
                    f"{name} {value!r} is not a positive multiple of {MULTIPLE} up to {MAX_DIM} "
                    f"(the network "
                    f"needs multiples of {MULTIPLE}; leave it out for a dynamic {name})"
                )

    def dims(self) -> tuple[str | int, str | int, str | int, int]:
        """The input shape: ints where static, ``batch``, ``height``, ``width`` where not."""
        return (
            "batch" if self.batch is None else self.batch,
            "height" if self.height is None else self.height,
            "width" if self.width is None else self.width,
            1,
        )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DIM
