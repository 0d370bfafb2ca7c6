"""Training progress: TensorBoard scalars and image panels, and a console line (process 0)."""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import numpy as np

log = logging.getLogger("jaxdark.training")
# A logging interval that spent more than this share of its time waiting for the data
# iterator is flagged "input-bound" on the console (TensorBoard: train/data_wait_share).
STARVED_SHARE = 0.1


def duration(seconds: float) -> str:
    """``5d12h``, ``3h07m`` or ``4m09s``."""
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def panels(inputs: np.ndarray, preds: np.ndarray, targets: np.ndarray, n: int) -> np.ndarray:
    """(n, H, 3W, 3): amplified input (grey, clipped), restored, ground truth."""
    n = min(n, inputs.shape[0])
    grey = np.repeat(np.clip(inputs[:n], 0, 1), 3, axis=-1)
    return np.concatenate([grey, preds[:n], targets[:n]], axis=2).astype(np.float32)


class ProgressLogger:
    """TensorBoard scalars/images under ``workdir/tensorboard`` and a console line."""

    def __init__(self, workdir: Path, total_steps: int):
        self.enabled = jax.process_index() == 0
        self.total = total_steps
        self.writer = None
        if self.enabled:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(logdir=str(workdir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """Log ``values`` as ``prefix/NAME``; training values also give a console line."""
        if not self.enabled:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)
        if prefix != "train":
            log.info(
                "step %d %s: %s", step, prefix, " ".join(f"{k} {v:.4f}" for k, v in values.items())
            )
            return
        eta = (self.total - step) / max(values["steps_per_sec"], 1e-9)
        log.info(
            "step %d/%d | loss %.4f l1 %.4f ms-ssim %.4f | lr %.2e | %.2f steps/s %.1f ex/s | "
            "waiting for data %.0f%%%s | eta %s",
            *(step, self.total, values["loss"], values["l1"], values["ms_ssim"]),
            *(values["learning_rate"], values["steps_per_sec"], values["examples_per_sec"]),
            100 * values.get("data_wait_share", 0.0),
            " (input-bound)" if values.get("data_wait_share", 0.0) > STARVED_SHARE else "",
            duration(eta),
        )

    def images(self, step: int, images: np.ndarray) -> None:
        """Log (n, H, W, 3) panels as ``train/crop_i``."""
        if self.enabled:
            for i, panel in enumerate(images):
                self.writer.add_image(f"train/crop_{i}", panel, step, dataformats="HWC")

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
