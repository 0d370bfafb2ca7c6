"""Flag parsing for the absl entry points (train.py, eval.py) with one-line errors.

absl reports its own flag errors tidily, but a ``--config.FIELD=VALUE`` naming a field the
config does not have escapes from ml_collections as a multi-line traceback. This parser
turns every flag error into ``PROG: error: ...`` on one line and exit status 2.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from absl import flags


def _one_line(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, AttributeError | KeyError):  # unknown config field
        text = text.replace("\\n", " ").replace("\\'", "'")
        unknown = re.search(r"'([A-Za-z_][\w.]*)'", text)
        hint = re.search(r'Did you mean "([\w.]+)"', text)
        if unknown:
            text = f"the config has no field {unknown.group(1)!r}"
            if hint:
                text += f" (did you mean {hint.group(1)!r}?)"
    return " ".join(text.split())


def make_flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
    """A ``flags_parser`` for ``absl.app.run`` that reports bad flags on one line."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
            print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
            sys.exit(2)

    return parse
