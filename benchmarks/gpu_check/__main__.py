"""``python -m benchmarks.gpu_check``: see the package docstring and `harness`."""

import sys

from benchmarks.gpu_check.harness import main

if __name__ == "__main__":
    sys.exit(main())
