"""Optional dependency groups (pip extras): which modules each needs, and a one-line check."""

from __future__ import annotations

import importlib.util

from jaxdark.errors import JaxdarkError

# extra -> {module imported: distribution that provides it}
EXTRAS = {
    "train": {
        "optax": "optax",
        "grain": "grain",
        "tensorflow_datasets": "tensorflow-datasets",
        "array_record": "array-record",
        "ml_collections": "ml-collections",
        "tensorboardX": "tensorboardX",
        "absl": "absl-py",
    },
    "video": {"av": "av"},
}


def missing_modules(extra: str) -> list[str]:
    """Distributions of ``extra`` whose module cannot be found (nothing is imported)."""
    return [
        dist for module, dist in EXTRAS[extra].items() if importlib.util.find_spec(module) is None
    ]


def require_extra(extra: str, what: str) -> None:
    """One-line `JaxdarkError` naming the extra to install if any of its modules is missing."""
    missing = missing_modules(extra)
    if missing:
        raise JaxdarkError(
            f"{what} needs the '{extra}' extra (missing: {', '.join(missing)}); install it with "
            f'pip install "jaxdark[{extra}]"'
        )
