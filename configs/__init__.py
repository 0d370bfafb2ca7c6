"""ml_collections configs for `train.py` (``--config=configs/NAME.py[:ARG]``)."""
