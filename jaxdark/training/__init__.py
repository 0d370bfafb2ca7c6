"""Training (needs the ``train`` extra): the data-parallel step, the loop, the optimiser,
the loss, checkpoints and progress logs.

Modules: `step` (jit + shard_map step, mesh and batch placement), `state` (one call from a
network to a ready setup), `optim` (Adam on the reference's schedule), `losses` (L1 +
MS-SSIM), `checkpointing` (orbax, resumable), `progress` (TensorBoard and console),
`config` (the fields a config must declare), `loop` (`train_and_evaluate`).
"""
