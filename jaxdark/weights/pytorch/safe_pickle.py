"""A pickle reader that builds plain data only: no code from the file runs, nothing outside
the load changes, and every step is bounded by the bytes that are really there.

Python's own unpickler, even with a restrictive ``find_class``, lets a file act on the
objects it may name (BUILD sets attributes of an allow-listed class or function for the
whole process) and recurses or allocates as the file dictates. This module is a small
pickle machine of its own instead:

* it understands the binary opcodes of protocols 2 to 5 that ``torch.save`` and plain
  ``pickle.dump`` of dicts, lists, tuples and scalars produce; any other opcode (INST, OBJ,
  NEWOBJ, EXT*, out-of-band buffers, protocol 0 text opcodes, ...) is refused;
* GLOBAL and STACK_GLOBAL push an immutable `Global` token; the file can only *call* a
  token (REDUCE) whose name the caller allow-listed, and what is called is the caller's
  factory, which builds a new object from the arguments;
* SETITEM(S), APPEND(S) and BUILD act only on dicts and lists that this load created
  (BUILD's state is checked and dropped: it only ever carries metadata such as a
  ``state_dict``'s ``_metadata``); dict keys must be scalars;
* lengths are checked against the bytes left before anything is read, so work and
  memory are linear in the size of the data.

`rebuild` walks a loaded object with a depth limit, refusing cycles, and visits each
shared container once (so sharing cannot blow up the work).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from jaxdark.errors import CheckpointError, flatten
from jaxdark.weights.pytorch.pickle_walk import Global, describe, rebuild  # noqa: F401  (re-exported)

HIGHEST_PROTOCOL = 5
MAX_GLOBAL_NAME = 256  # bytes of a module or attribute name in GLOBAL
# Opcodes one load may execute: bounds the objects it creates (each opcode makes at most
# one, so at most about 64 MB of them) and its time; a state dict takes about 50 per
# tensor (the official checkpoint about 3,100 in all).
MAX_OPS = 1_000_000


class _Mark:
    """The MARK opcode's stack marker."""


_MARK = _Mark()
_SCALAR_KEYS = (str, int, float, bytes, type(None))  # bool is an int


class _Machine:
    """State of one load: the stack, the mark stack and the memo."""

    def __init__(
        self,
        data: bytes | memoryview,
        pos: int,
        source: str,
        factories: Mapping[tuple[str, str], Callable[..., Any] | None],
        persistent_load: Callable[[Any], Any] | None,
        max_ops: int,
    ):
        self.data = memoryview(data).cast("B")
        self.pos = pos
        self.source = source
        self.factories = factories
        self.persistent_load = persistent_load
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.op_pos = pos
        self.max_ops = max_ops

    # --- reading -----------------------------------------------------------------------

    def fail(self, why: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {why} (pickle byte {self.op_pos})")

    def take(self, n: int) -> memoryview:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.fail(
                f"pickle asks for {describe(n)} bytes, {len(self.data) - self.pos} are left "
                "(truncated or corrupt)"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self) -> str:
        end = bytes(self.data[self.pos : self.pos + MAX_GLOBAL_NAME + 1]).find(b"\n")
        if end < 0:
            raise self.fail("GLOBAL name is too long or unterminated")
        text = bytes(self.take(end + 1)[:-1])
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("GLOBAL name is not ASCII") from None

    def text(self, n: int) -> str:
        try:
            return str(self.take(n), "utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self.fail("string is not valid UTF-8") from None

    # --- stack -------------------------------------------------------------------------

    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise self.fail("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("MARK missing")
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def push_mark(self) -> None:
        self.marks.append(len(self.stack))
        self.stack.append(_MARK)

    def pop_mark_items(self) -> list[Any]:
        items = self.pop_mark()
        if not items or items[0] is not _MARK:
            raise self.fail("MARK missing")
        items = items[1:]
        if any(x is _MARK for x in items):
            raise self.fail("MARK in an unexpected place")
        return items

    def tail_tuple(self, n: int) -> tuple:
        if len(self.stack) < n or any(x is _MARK for x in self.stack[len(self.stack) - n :]):
            raise self.fail("stack underflow")
        items = tuple(self.stack[len(self.stack) - n :]) if n else ()
        del self.stack[len(self.stack) - n :]
        return items

    def memo_get(self, i: int) -> Any:
        try:
            return self.memo[i]
        except KeyError:
            raise self.fail(f"memo entry {i} does not exist") from None

    # --- acting on containers ----------------------------------------------------------

    def set_items(self, target: Any, items: list[Any]) -> None:
        if type(target) not in (dict, OrderedDict):
            raise self.fail(f"SETITEM on {describe(target)} (only dicts of this file)")
        if len(items) % 2:
            raise self.fail("SETITEMS with an odd number of items")
        for k in range(0, len(items), 2):
            key = items[k]
            if not isinstance(key, _SCALAR_KEYS):
                raise self.fail(f"dict key is {describe(key)} (only strings and numbers)")
            target[key] = items[k + 1]

    def append_items(self, target: Any, items: list[Any]) -> None:
        if type(target) is not list:
            raise self.fail(f"APPEND on {describe(target)} (only lists of this file)")
        target.extend(items)

    def build(self) -> None:
        state = self.pop()
        target = self.top()
        if type(target) not in (dict, OrderedDict):
            raise self.fail(f"BUILD on {describe(target)} (only dicts of this file)")
        if isinstance(state, tuple) and len(state) == 2:
            parts = state
        else:
            parts = (state,)
        for part in parts:
            if part is not None and type(part) not in (dict, OrderedDict):
                raise self.fail(f"BUILD state is {describe(part)}, expected a dict")
        # The state of a dict is attribute metadata (e.g. a state_dict's _metadata): dropped.

    def reduce(self) -> None:
        args = self.pop()
        func = self.pop()
        if not isinstance(func, Global):
            raise self.fail(f"REDUCE calls {describe(func)}")
        if type(args) is not tuple:
            raise self.fail(f"REDUCE arguments are {describe(args)}, expected a tuple")
        factory = self.factories.get((func.module, func.name))
        if factory is None:  # allowed as a name (e.g. a storage type), not as a call
            raise self.fail(f"refusing to call {func}")
        self.stack.append(factory(*args))

    def find_global(self, module: Any, name: Any) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise self.fail("STACK_GLOBAL names are not strings")
        token = Global(module, name)
        if (module, name) not in self.factories:
            raise CheckpointError(
                f"{self.source}: refusing to load global '{token}' "
                "(only tensors and dicts are allowed in a checkpoint)"
            )
        return token

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> tuple[Any, int]:
        stack = self.stack
        data = self.data
        for _ in range(self.max_ops):
            self.op_pos = self.pos
            if self.pos >= len(data):
                raise CheckpointError(f"{self.source}: file is truncated (pickle ends early)")
            op = data[self.pos]
            self.pos += 1
            handler = _DISPATCH.get(op)
            if handler is None:
                raise self.fail(f"corrupt or unsupported pickle (opcode {bytes([op])!r})")
            if handler is _stop:
                if self.marks:
                    raise self.fail("STOP inside a MARK")
                if len(stack) != 1:
                    raise self.fail("STOP with a malformed stack")
                return stack.pop(), self.pos
            handler(self)
        raise self.fail(f"more than {self.max_ops:,} pickle operations")


def _proto(m: _Machine) -> None:
    version = m.take(1)[0]
    if version < 2 or version > HIGHEST_PROTOCOL:
        raise m.fail(f"pickle protocol {version} is not supported (2 to {HIGHEST_PROTOCOL})")


def _frame(m: _Machine) -> None:
    n = m.unpack("<Q")
    if n > len(m.data) - m.pos:
        raise m.fail("frame longer than the data")


def _stop(m: _Machine) -> None:  # handled in the loop
    raise AssertionError


def _persid(m: _Machine) -> None:
    pid = m.pop()
    if m.persistent_load is None:
        raise m.fail("persistent ids are not allowed here")
    m.stack.append(m.persistent_load(pid))


def _put(m: _Machine, index: int) -> None:
    m.memo[index] = m.top()


def _dict_from_mark(m: _Machine) -> None:
    items = m.pop_mark_items()
    d: dict = {}
    m.set_items(d, items)
    m.stack.append(d)


def _setitem(m: _Machine) -> None:
    value = m.pop()
    key = m.pop()
    m.set_items(m.top(), [key, value])


def _setitems(m: _Machine) -> None:
    items = m.pop_mark_items()
    m.set_items(m.top(), items)


def _append(m: _Machine) -> None:
    value = m.pop()
    m.append_items(m.top(), [value])


def _appends(m: _Machine) -> None:
    items = m.pop_mark_items()
    m.append_items(m.top(), items)


def _global(m: _Machine) -> None:
    module = m.line()
    name = m.line()
    m.stack.append(m.find_global(module, name))


def _stack_global(m: _Machine) -> None:
    name = m.pop()
    module = m.pop()
    m.stack.append(m.find_global(module, name))


def _pop_mark(m: _Machine) -> None:
    m.pop_mark_items()


def _long(m: _Machine, n: int) -> None:
    m.stack.append(int.from_bytes(m.take(n), "little", signed=True))


_DISPATCH: dict[int, Callable[[_Machine], None]] = {
    0x80: _proto,  # PROTO
    0x95: _frame,  # FRAME
    ord("."): _stop,  # STOP
    ord("("): _Machine.push_mark,  # MARK
    ord("0"): lambda m: m.pop(),  # POP
    ord("1"): _pop_mark,  # POP_MARK
    ord("N"): lambda m: m.stack.append(None),  # NONE
    0x88: lambda m: m.stack.append(True),  # NEWTRUE
    0x89: lambda m: m.stack.append(False),  # NEWFALSE
    ord("J"): lambda m: m.stack.append(m.unpack("<i")),  # BININT
    ord("K"): lambda m: m.stack.append(m.take(1)[0]),  # BININT1
    ord("M"): lambda m: m.stack.append(m.unpack("<H")),  # BININT2
    0x8A: lambda m: _long(m, m.take(1)[0]),  # LONG1
    0x8B: lambda m: _long(m, m.unpack("<i")),  # LONG4
    ord("G"): lambda m: m.stack.append(m.unpack(">d")),  # BINFLOAT
    ord("X"): lambda m: m.stack.append(m.text(m.unpack("<I"))),  # BINUNICODE
    0x8C: lambda m: m.stack.append(m.text(m.take(1)[0])),  # SHORT_BINUNICODE
    0x8D: lambda m: m.stack.append(m.text(m.unpack("<Q"))),  # BINUNICODE8
    ord("B"): lambda m: m.stack.append(bytes(m.take(m.unpack("<I")))),  # BINBYTES
    ord("C"): lambda m: m.stack.append(bytes(m.take(m.take(1)[0]))),  # SHORT_BINBYTES
    0x8E: lambda m: m.stack.append(bytes(m.take(m.unpack("<Q")))),  # BINBYTES8
    ord("}"): lambda m: m.stack.append({}),  # EMPTY_DICT
    ord("]"): lambda m: m.stack.append([]),  # EMPTY_LIST
    ord(")"): lambda m: m.stack.append(()),  # EMPTY_TUPLE
    ord("d"): _dict_from_mark,  # DICT
    ord("l"): lambda m: m.stack.append(m.pop_mark_items()),  # LIST
    ord("t"): lambda m: m.stack.append(tuple(m.pop_mark_items())),  # TUPLE
    0x85: lambda m: m.stack.append(m.tail_tuple(1)),  # TUPLE1
    0x86: lambda m: m.stack.append(m.tail_tuple(2)),  # TUPLE2
    0x87: lambda m: m.stack.append(m.tail_tuple(3)),  # TUPLE3
    ord("a"): _append,  # APPEND
    ord("e"): _appends,  # APPENDS
    ord("s"): _setitem,  # SETITEM
    ord("u"): _setitems,  # SETITEMS
    ord("b"): _Machine.build,  # BUILD
    ord("R"): _Machine.reduce,  # REDUCE
    ord("c"): _global,  # GLOBAL
    0x93: _stack_global,  # STACK_GLOBAL
    ord("Q"): _persid,  # BINPERSID
    ord("q"): lambda m: _put(m, m.take(1)[0]),  # BINPUT
    ord("r"): lambda m: _put(m, m.unpack("<I")),  # LONG_BINPUT
    0x94: lambda m: _put(m, len(m.memo)),  # MEMOIZE
    ord("h"): lambda m: m.stack.append(m.memo_get(m.take(1)[0])),  # BINGET
    ord("j"): lambda m: m.stack.append(m.memo_get(m.unpack("<I"))),  # LONG_BINGET
}


def load(
    data: bytes | memoryview,
    *,
    source: str,
    factories: Mapping[tuple[str, str], Callable[..., Any] | None],
    persistent_load: Callable[[Any], Any] | None = None,
    pos: int = 0,
    max_ops: int = MAX_OPS,
) -> tuple[Any, int]:
    """Unpickle one object starting at byte ``pos`` of ``data``; returns it and the end.

    ``factories`` maps the allow-listed ``(module, name)`` globals to functions that build
    a new object from REDUCE's arguments (``None``: the name may appear, e.g. inside a
    persistent id, but not be called); ``persistent_load`` turns a persistent id into
    an object. Every failure is a one-line `CheckpointError` starting with ``source``.
    """
    machine = _Machine(data, pos, source, factories, persistent_load, max_ops)
    try:
        return machine.run()
    except CheckpointError:
        raise
    except (TypeError, ValueError, OverflowError, struct.error) as e:  # from a factory
        raise machine.fail(f"malformed pickle ({type(e).__name__}: {flatten(str(e))})") from None
