"""``python -m convert_weights SRC DST``: the same as ``jaxdark convert SRC DST``."""

import sys

from jaxdark.cli import main

sys.exit(main(["convert", *sys.argv[1:]]))
