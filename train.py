"""Train jaxdark on SID: ``python train.py --config=configs/sid_sony.py --workdir=DIR``.

Flags only; the work is `jaxdark.training.loop.train_and_evaluate`. Override config fields
with ``--config.FIELD=VALUE``; see configs/sid_sony.py for launch commands (one machine, pod).
"""

from __future__ import annotations

import os
import sys

from jaxdark.cli.flags import require_train_extra

if __name__ == "__main__":
    require_train_extra("train.py")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints and TensorBoard logs.")
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.DEFINE_bool(
    "jax_distributed", False, "Call jax.distributed.initialize() (auto-detects TPU pods, SLURM)."
)
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
flags.DEFINE_integer("process_id", None, "Index of this process (multi-process runs).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:  # keep orbax/grain INFO chatter off the console
        logging.set_verbosity(logging.WARNING)
    from jaxdark.cli.flags import console_logging
    from jaxdark.errors import JaxdarkError
    from jaxdark.fileio import check_writable_dir
    from jaxdark.models import import_model
    from jaxdark.training.config import check_train_config

    console_logging()
    try:
        check_writable_dir(FLAGS.workdir, "--workdir")
        check_train_config(FLAGS.config)
        if FLAGS.config.model.get("name"):  # the user's own module:name, typed here
            import_model(FLAGS.config.model.name)
    except (JaxdarkError, ValueError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    import jax

    if FLAGS.coordinator_address or FLAGS.jax_distributed:
        if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
            # cross-process collectives of CPU devices (harmless where accelerators train)
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=FLAGS.coordinator_address,
            num_processes=FLAGS.num_processes,
            process_id=FLAGS.process_id,
        )
    from jaxdark.training.loop import train_and_evaluate

    try:
        summary = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (JaxdarkError, OSError, ValueError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    if summary["preempted"]:
        print(f"stopped at step {summary['step']}; checkpoint saved in {FLAGS.workdir}")
    return 0


if __name__ == "__main__":
    from jaxdark.cli.flags import make_flags_parser

    app.run(main, flags_parser=make_flags_parser("train.py"))
