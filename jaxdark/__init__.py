"""jaxdark: JAX/Flax NNX port of "Restoring Extremely Dark Images in Real Time".

Public API (see README.md and docs/):
  create_model(seed=0)           a freshly initialised network
  load_model(path)               the network from a .pth, a converted checkpoint or a training run
  DarkRestorationNet             the network class (sizes are constructor arguments)
  estimate_amplification(x, m)   the reference's brightening factor of a normalised mosaic
  Restorer(model_or_path)        RAW mosaic/file -> sRGB at the input's resolution

Packages: `jaxdark.models` (every network), `jaxdark.weights` (loading and converting),
`jaxdark.imaging` (RAW files, Bayer geometry, DNG, the amplifier, metrics), `jaxdark.data`,
`jaxdark.training`, `jaxdark.evaluation`, `jaxdark.export`, `jaxdark.cli`.

Importing jaxdark loads no training library (grain, tensorflow-datasets, tensorboardX,
ml_collections): those live in `jaxdark.training` and `jaxdark.data`, installed with the
``train`` extra.
"""

from jaxdark.imaging.amplifier import estimate_amplification
from jaxdark.models import DarkRestorationNet, count_params, create_model
from jaxdark.restorer import Restorer
from jaxdark.weights import load_model

__version__ = "0.2.0"

__all__ = [
    "DarkRestorationNet",
    "Restorer",
    "count_params",
    "create_model",
    "estimate_amplification",
    "load_model",
]
