"""Evaluate a model on SID: PSNR / SSIM of every pair of a split at full resolution.

  python eval.py --config=configs/sid_sony.py --workdir=DIR [--weights=PATH] \
      [--config.amplification=estimated --config.eval_m=5 --config.eval_split=test ...]

Weights: ``--weights`` (the official .pth or a converted checkpoint); without it, the
latest training checkpoint in ``--workdir``. Results go to ``DIR/eval_<split>_<mode>/``.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Configuration file (get_config()).")
flags.DEFINE_string("workdir", None, "Work directory: training checkpoints and eval outputs.")
flags.DEFINE_string(
    "weights",
    None,
    "Official .pth or converted checkpoint (default: latest training checkpoint in --workdir).",
)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    """Run `jaxdark.evaluate.evaluate`; bad input is reported on one line."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from jaxdark.errors import JaxdarkError
    from jaxdark.evaluate import evaluate

    try:
        summary = evaluate(FLAGS.config, FLAGS.workdir, FLAGS.weights)
    except (JaxdarkError, ValueError, FileNotFoundError) as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eval.py: interrupted (results.csv holds the pairs finished)", file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    from jaxdark.flag_parsing import make_flags_parser

    app.run(main, flags_parser=make_flags_parser("eval.py"))
