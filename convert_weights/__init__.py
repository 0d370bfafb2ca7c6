"""PyTorch checkpoint -> jaxdark conversion and the parity tooling.

``python -m convert_weights SRC DST`` converts (same as ``jaxdark convert``);
``python -m convert_weights.verify CHECKPOINT`` compares jaxdark with our PyTorch
rendering of the reference network (`convert_weights.reference_torch`, needs torch).
"""
