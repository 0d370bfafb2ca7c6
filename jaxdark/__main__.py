"""``python -m jaxdark`` runs the ``jaxdark`` command."""

import sys

from jaxdark.cli import main

sys.exit(main())
