"""The values `jaxdark.weights.pytorch.safe_pickle.load` builds, and walking them: `Global` (a
name the
pickle asked for, never imported), `describe` (a safe one-line description of an
untrusted value) and `rebuild` (a copy with a depth limit that refuses cycles and visits
each shared container once, so sharing cannot blow up the work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from jaxdark.errors import CheckpointError


class Global(NamedTuple):
    """A class or function named by the pickle; immutable, and never imported."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


def describe(value: Any) -> str:
    """A short description of an untrusted value that is safe to put into a message.

    Never calls ``repr`` on containers (a shared structure can make that exponential) or
    on huge integers (their decimal form costs quadratic time).
    """
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return (
            repr(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
        )
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return ascii(text)
    if isinstance(value, Global):
        return f"global {value}"
    return f"a {type(value).__name__}"


def rebuild(obj: Any, leaf: Callable[[Any], Any], *, source: str, max_depth: int) -> Any:
    """Copy ``obj``'s dicts, lists and tuples, replacing every other value by ``leaf(value)``.

    Each container is visited once however often it is shared; nesting deeper than
    ``max_depth`` and containers that contain themselves raise a one-line
    `CheckpointError`.
    """
    done: dict[int, Any] = {}
    on_path: set[int] = set()

    def visit(x: Any, depth: int) -> Any:
        if not isinstance(x, dict | list | tuple) or isinstance(x, Global):
            return leaf(x)
        key = id(x)
        if key in done:
            return done[key]
        if key in on_path:
            raise CheckpointError(f"{source}: a {type(x).__name__} contains itself")
        if depth >= max_depth:
            raise CheckpointError(f"{source}: nesting deeper than {max_depth} levels")
        on_path.add(key)
        if isinstance(x, dict):
            out: Any = type(x)((k, visit(v, depth + 1)) for k, v in x.items())
        elif isinstance(x, list):
            out = [visit(v, depth + 1) for v in x]
        else:
            out = tuple(visit(v, depth + 1) for v in x)
        on_path.discard(key)
        done[key] = out
        return out

    return visit(obj, 0)
