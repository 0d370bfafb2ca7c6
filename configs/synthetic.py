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

The fields are those of configs/sid_sony.py (which declares ``photo_dir`` and
``synthetic_*`` with synthetic pairs off); this file turns them on.
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
    c.synthetic_fraction = 0.5  # share of synthetic pairs when SID is configured too
    # Validation: without SID, held-out synthetic pairs (jaxdark.evaluation.synthetic):
    # each validation photo once, whole, with fixed draws; every eval_every_steps steps.
    c.num_eval_pairs = 3
    if arg == "local":
        c.worker_count = 0
    else:
        c.worker_count = 4  # synthesis is ~30 ms per pair on one core
    return c
