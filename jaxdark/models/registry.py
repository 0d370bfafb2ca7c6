"""The model registry: names -> network classes, and architecture records for checkpoints.

A registered class is an `nnx.Module` that honours the zoo's contract (see
`jaxdark.models`): it has an ``input_multiple`` attribute and a ``config()`` method
returning its constructor sizes. `spec_of(model)` turns a model into the record a
checkpoint stores, ``{"name": ..., **sizes}``, and `build(spec)` turns that record back
into a model.

Names are only ever looked up in the registry: nothing read from a file (a checkpoint's
model record, a run's config.json) chooses code to import or run. A model defined outside
the package is made available by the user's own code, which imports the module that
registers it before calling into jaxdark (see examples/new_variant.py); its records name
it ``"some.module:name"``, which resolves only if ``name`` is registered by a class of
``some.module``. On the command line (``train.py --config.model.name=some.module:name``)
`import_model` imports the module the user named, then looks the name up.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from flax import nnx

from jaxdark.errors import ModelError

DEFAULT_MODEL = "lamba2021"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REGISTRY: dict[str, type[nnx.Module]] = {}
# model name -> factory(model, dtype) -> (apply_fn, params): a faster inference path
_INFERENCE: dict[str, Callable[[nnx.Module, Any], tuple[Callable, Any]]] = {}
# arguments that are not sizes of the architecture: never recorded, always accepted
_RESERVED = ("self", "rngs")


def register(name: str) -> Callable[[type[nnx.Module]], type[nnx.Module]]:
    """Class decorator: make the model class selectable as ``name``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"model names are lower-case identifiers, got {name!r}")

    def decorate(cls: type[nnx.Module]) -> type[nnx.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nnx.Module)):
            raise TypeError(f"register({name!r}) expects an nnx.Module subclass, got {cls!r}")
        multiple = getattr(cls, "input_multiple", None)
        if not isinstance(multiple, int) or multiple < 2 or multiple % 2:
            raise TypeError(f"{cls.__name__}.input_multiple must be an even int, got {multiple!r}")
        if not callable(getattr(cls, "config", None)):
            raise TypeError(f"{cls.__name__} must define config() returning its sizes")
        known = _REGISTRY.get(name)
        if known is not None and _qualname(known) != _qualname(cls):
            raise ValueError(f"model name {name!r} is already taken by {_qualname(known)}")
        _REGISTRY[name] = cls
        return cls

    return decorate


def register_inference(name: str) -> Callable[[Callable], Callable]:
    """Decorator: ``factory(model, dtype) -> (apply_fn, params)`` is how models registered
    as ``name`` restore (`jaxdark.models.inference_apply`), in place of their ``__call__``."""

    def decorate(factory: Callable) -> Callable:
        _INFERENCE[name] = factory
        return factory

    return decorate


def inference_factory(model: nnx.Module) -> Callable | None:
    """The registered inference factory of ``model``'s class (None: it has none)."""
    for name, registered in _REGISTRY.items():
        if registered is type(model):
            return _INFERENCE.get(name)
    return None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def names() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> type[nnx.Module]:
    """The class registered as ``name``, looked up in the registry only (never imports).

    ``"module:name"`` (how models defined outside jaxdark are recorded) resolves if
    ``name`` is registered by a class defined in ``module``: the user's code must have
    imported that module first.
    """
    if not isinstance(name, str) or not name:
        raise ModelError(f"model name must be a non-empty string, got {name!r}")
    module, _, key = name.rpartition(":")
    cls = _REGISTRY.get(key)
    if cls is None:
        hint = (
            f"; a model of {module!r} must be registered by your own code first (import "
            "the module that registers it, or train.py --config.model.name=module:name)"
            if module
            else ""
        )
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(names())}{hint}")
    if module and cls.__module__ not in (module, "__main__"):
        raise ModelError(
            f"model {name!r}: {key!r} is registered by {_qualname(cls)}, not by {module!r}"
        )
    return cls


def import_model(name: str) -> type[nnx.Module]:
    """`get` for a name the user typed (command line, own code): ``"module:name"``
    imports ``module`` (which registers the model) first. Never call this with a name
    read from a file."""
    module, _, _ = str(name).rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ModelError(f"model {name!r}: cannot import {module!r} ({e})") from None
    return get(name)


def accepted_sizes(cls: type[nnx.Module]) -> list[str] | None:
    """Keyword arguments the class's constructor takes (None: it takes any, via **kwargs)."""
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in _RESERVED]


def _normalise(value: Any) -> Any:
    """JSON / ml_collections values -> constructor values (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_normalise(v) for v in value)
    return value


def split_spec(spec: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """``{"name": ..., **sizes}`` -> (name, sizes); no name means `DEFAULT_MODEL`, and
    sizes set to None are dropped (the model's default applies)."""
    spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else (spec or {}))
    name = spec.pop("name", None) or DEFAULT_MODEL
    sizes = {k: _normalise(v) for k, v in spec.items() if v is not None}
    return name, sizes


def build(
    spec: Mapping[str, Any] | None = None, seed: int = 0, *, abstract: bool = False
) -> nnx.Module:
    """A freshly initialised model from its record ``{"name": ..., **sizes}``.

    With ``abstract`` the parameters are only shapes (`nnx.eval_shape`), which is all
    that loading weights into it needs.
    """
    name, sizes = split_spec(spec)
    cls = get(name)
    allowed = accepted_sizes(cls)
    if allowed is not None:
        unknown = sorted(set(sizes) - set(allowed))
        if unknown:
            raise ModelError(
                f"model {name!r} has no size {unknown[0]!r} (it takes: {', '.join(allowed)})"
            )

    def make() -> nnx.Module:
        return cls(**sizes, rngs=nnx.Rngs(seed))

    try:
        return nnx.eval_shape(make) if abstract else make()
    except (TypeError, ValueError) as e:
        raise ModelError(f"model {name!r} with sizes {sizes}: {str(e).splitlines()[0]}") from None


def create(name: str = DEFAULT_MODEL, *, seed: int = 0, **sizes: Any) -> nnx.Module:
    """A freshly initialised model ``name`` with the given constructor sizes."""
    return build({"name": name, **sizes}, seed)


def name_of(model: nnx.Module) -> str:
    """The registered name of ``model``'s class (``"module:name"`` for models registered
    outside jaxdark, so that a fresh process can find them again)."""
    cls = type(model)
    for name, registered in _REGISTRY.items():
        if registered is cls:
            module = cls.__module__
            if module.split(".")[0] in ("jaxdark", "__main__"):
                return name
            return f"{module}:{name}"
    raise ModelError(f"{cls.__name__} is not a registered model (use jaxdark.models.register)")


def spec_of(model: nnx.Module) -> dict[str, Any]:
    """The architecture record of ``model``: ``{"name": ..., **model.config()}`` (JSON-safe)."""

    def plain(value: Any) -> Any:
        return [plain(v) for v in value] if isinstance(value, list | tuple) else value

    return {"name": name_of(model), **{k: plain(v) for k, v in model.config().items()}}
