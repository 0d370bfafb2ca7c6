"""jaxdark: JAX/Flax NNX port of "Restoring Extremely Dark Images in Real Time".

Public API (see README.md):
  create_model(seed=0)           a freshly initialised network
  load_model(path)               the network with weights from a .pth or converted checkpoint
  DarkRestorationNet             the network class (sizes are constructor arguments)
  estimate_amplification(x, m)   the reference's brightening factor of a normalised mosaic
  Restorer(model_or_path)        RAW mosaic/file -> sRGB at the input's resolution
"""

from jaxdark.amplifier import estimate_amplification
from jaxdark.convert import create_model, load_model
from jaxdark.model import DarkRestorationNet, count_params
from jaxdark.restorer import Restorer

__all__ = [
    "DarkRestorationNet",
    "Restorer",
    "count_params",
    "create_model",
    "estimate_amplification",
    "load_model",
]
