"""Training on synthetic dark pairs made from ordinary photos (no SID download needed).

Each pair is an sRGB photo unprocessed to a Sony a7S II mosaic, darkened by SID's
exposure ratios with ELD's calibrated a7S II noise, and its rawpy-developed target
(`jaxdark.data.synthetic`); pairs come from `jaxdark.data.synthetic_source`. With no
photo folder, scikit-image's bundled sample photographs are used (works offline).

    python train.py --config=configs/synthetic.py:local --workdir=/tmp/synthetic_local
    python train.py --config=configs/synthetic.py --workdir=/runs/syn \\
        --config.photo_dir=/data/photos
    # SID and synthetic pairs mixed, half and half:
    python train.py --config=configs/synthetic.py --workdir=/runs/mixed \\
        --config.data_dir=/data/SID --config.synthetic_fraction=0.5

The fields are those of configs/sid_sony.py plus ``photo_dir`` and ``synthetic_*``.
"""

from __future__ import annotations

import ml_collections

from configs import sid_sony


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Synthetic pairs with the paper's recipe; ``arg="local"`` gives a small CPU variant."""
    if arg not in (None, "", "local"):
        raise ValueError(f"unknown variant {arg!r} of configs/synthetic.py; expected 'local'")
    c = sid_sony.get_config(arg)
    # SID stays off unless data_dir / tfds_data_dir is set (then the two are mixed).
    c.prepare_dataset = True
    # scikit-image's photos are 300-1411 px; a 512 crop would leave out 7 of the 12.
    c.crop_size = 256 if arg != "local" else 128
    # Synthetic pairs
    c.photo_dir = ""  # folder of PNG/JPEG/TIFF photos, recursive; "": scikit-image's samples
    c.synthetic_fraction = 0.5  # share of synthetic pairs when SID is configured too
    c.synthetic_window = 0  # side of the window cut from a photo per pair (0: crop_size + 2)
    c.synthetic_variants = 10_000  # pairs per photo in one pass, each drawn anew
    c.synthetic_val_fraction = 0.1  # photo_dir only: share of photos held out (path hash)
    c.synthetic_ratios = (100.0, 250.0, 300.0)  # exposure ratios, one drawn per pair ...
    c.synthetic_ratio_range = (0.0, 0.0)  # ... or (lo, hi): uniform in [lo, hi]
    c.synthetic_read_model = "tukey-lambda"  # or "gaussian" (ELD's two read-noise fits)
    c.synthetic_read_noise_scale = 1.0  # multiplies read and row noise (another camera)
    c.synthetic_tone_curve = True  # invert the smoothstep tone curve of sRGB photos
    c.synthetic_white_balance_spread = 0.05  # log-normal spread around daylight..tungsten
    c.synthetic_color_matrix_spread = 0.02  # relative spread of the colour matrix
    # Validation in train.py reads SID (jaxdark.evaluate.Evaluator): off here.
    c.eval_every_steps = 0
    if arg == "local":
        c.worker_count = 0
    else:
        c.worker_count = 4  # synthesis is ~30 ms per pair on one core
    return c
