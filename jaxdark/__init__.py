"""jaxdark: JAX/Flax NNX port of "Restoring Extremely Dark Images in Real Time".

Public API (see README.md):
  create_model(seed=0)           a freshly initialised network
  load_model(path)               the network with weights from a .pth or converted checkpoint
  DarkRestorationNet             the network class (sizes are constructor arguments)
"""

from jaxdark.convert import create_model, load_model
from jaxdark.model import DarkRestorationNet, count_params

__all__ = [
    "DarkRestorationNet",
    "count_params",
    "create_model",
    "load_model",
]
