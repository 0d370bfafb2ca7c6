"""A new network for the zoo in a few lines: define it, register it, and it trains,
restores and benchmarks like the built-in ones.

    python -m examples.new_variant          # 20 steps on a synthetic scene, then restore it
    python train.py --config=configs/sid_sony.py:local --workdir=runs/tiny \
        --config.model.name=examples.new_variant:tiny_resnet   # on SID (see docs/models.md)

Your own code makes the model available: importing this module registers it. On
train.py's command line, ``--config.model.name=examples.new_variant:tiny_resnet`` tells
train.py to import this module (you typed its name); checkpoints record that name. jaxdark
never imports a module named in a file, so to restore or export such a checkpoint, import
the module first in your own script, then call jaxdark::

    import examples.new_variant  # registers tiny_resnet
    import jaxdark
    model = jaxdark.load_model("runs/tiny")
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark import Restorer, models
from jaxdark.constants import SID_BLACK_LEVEL as BLACK_LEVEL
from jaxdark.constants import SID_WHITE_LEVEL as WHITE_LEVEL
from jaxdark.data.chart import simulate_raw, synthetic_scene
from jaxdark.imaging import metrics
from jaxdark.models import check_input, register
from jaxdark.models.ops import pixel_shuffle, pixel_unshuffle
from jaxdark.training.optim import make_optimizer
from jaxdark.training.state import setup_training
from jaxdark.training.step import (
    make_data_mesh,
    make_global_batch,
    to_host,
)

# ---- the new model: everything below up to main() is all a new network needs ----


@register("tiny_resnet")
class TinyResNet(nnx.Module):
    """Packed Bayer -> ``blocks`` residual 3x3 blocks of ``width`` channels -> RGB x2."""

    input_multiple = 2  # only the 2x2 packing constrains the input

    def __init__(self, *, width: int = 32, blocks: int = 4, rngs: nnx.Rngs):
        self.width, self.blocks = width, blocks

        def conv(i: int, o: int) -> nnx.Conv:
            return nnx.Conv(i, o, kernel_size=(3, 3), rngs=rngs)

        self.head = conv(4, width)
        self.body = nnx.List(
            [nnx.List([conv(width, width), conv(width, width)]) for _ in range(blocks)]
        )
        self.tail = conv(width, 12)

    def config(self) -> dict:
        """The sizes a checkpoint records."""
        return {"width": self.width, "blocks": self.blocks}

    def __call__(self, x: jax.Array) -> jax.Array:
        check_input(x.shape, self.input_multiple, "tiny_resnet")
        h = self.head(pixel_unshuffle(x, 2))
        for c1, c2 in self.body:
            h = h + c2(jax.nn.leaky_relu(c1(h), 0.2))
        return jnp.clip(pixel_shuffle(self.tail(h), 2), 0.0, 1.0)


# ---- a few training steps on a synthetic scene, then a restoration ----


def main(steps: int = 20, size: int = 128) -> float:
    """Train ``tiny_resnet`` for ``steps`` steps on one synthetic dark scene with the
    project's data-parallel step, restore the scene and return the PSNR (dB)."""
    scene = synthetic_scene(size, size)
    target = np.power(scene, 1 / 2.2).astype(np.float32)  # sRGB-like gamma
    mosaic = (simulate_raw(scene).astype(np.float32) - BLACK_LEVEL) / (WHITE_LEVEL - BLACK_LEVEL)
    mosaic = np.maximum(mosaic, 0.0)
    amplification = 200.0  # the exposure ratio simulate_raw used
    model = models.create("tiny_resnet", seed=0, width=16, blocks=2)
    tx, _ = make_optimizer(1e-3)
    mesh = make_data_mesh(1)
    setup = setup_training(model, tx, mesh)
    graphdef, step, state = setup.graphdef, setup.train_step, setup.state
    batch = {"input": (amplification * mosaic)[None, :, :, None], "target": target[None]}
    for i in range(steps):
        state, m = step(state, make_global_batch(batch, mesh))
        if (i + 1) % 5 == 0:
            print(f"step {i + 1}: loss {float(to_host(m['loss'])):.4f}")
    trained = nnx.merge(graphdef, to_host(state.params))
    print(f"architecture record: {models.spec_of(trained)}")
    image = Restorer(trained).restore(mosaic, amplification=amplification)
    score = metrics.psnr(image, target)
    print(f"restored {image.shape}, PSNR {score:.2f} dB")
    return score


if __name__ == "__main__":
    main()
