"""Training on SID Sony: the reference recipe, and a small CPU variant.

Prepare the dataset once (from the extracted SID folder; no TensorFlow needed)::

    python -m jaxdark.data.sid --manual_dir=/data/SID --tfds_dir=/data/tensorflow_datasets

One machine (all its devices; resumes from WORKDIR/checkpoints if present)::

    python train.py --config=configs/sid_sony.py --workdir=/runs/sid_sony \\
        --config.data_dir=/data/SID --config.tfds_data_dir=/data/tensorflow_datasets

Small local run on a CPU (crop 128, batch 4, 200 steps)::

    python train.py --config=configs/sid_sony.py:local --workdir=/tmp/sid_local \\
        --config.data_dir=/data/SID

A pod / several hosts: run the same command on every host, with the workdir and the
prepared dataset on a filesystem all hosts share (Cloud TPU and SLURM are detected by
``--jax_distributed``; elsewhere give the coordinator explicitly; CPU processes use gloo
collectives)::

    python train.py --config=configs/sid_sony.py --workdir=/shared/runs/sid_sony \\
        --config.data_dir=/data/SID --config.tfds_data_dir=/shared/tfds --jax_distributed
    python train.py ... --coordinator_address=host0:1234 --num_processes=4 --process_id=$RANK

Override any field with ``--config.FIELD=VALUE``, e.g. ``--config.amplification=estimated``.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper's recipe; ``arg="local"`` gives a small CPU variant."""
    c = ml_collections.ConfigDict()
    # Data
    c.data_dir = ""  # the extracted SID folder (Sony/, Sony_*_list.txt)
    c.tfds_data_dir = ""  # TFDS data dir of the prepared dataset ("": ~/tensorflow_datasets)
    c.prepare_dataset = True  # build it from data_dir if missing (single-process runs only)
    c.train_split = "train"
    c.batch_size = 8  # global, over all devices and hosts
    c.crop_size = 512
    c.amplification = "gt"  # "gt": exposure ratio; "estimated": jaxdark.estimate_amplification
    c.m = 5.0  # brightness m of the estimated factor (training and evaluation; reference: 5)
    c.hflip_prob = 50 / 101  # the authors' script: randint(0, 100) > 50
    c.vflip_prob = 20 / 101  # ... and randint(0, 100) < 20 (notes/table1.md)
    c.worker_count = 8  # grain worker processes per host (0: read in the training process)
    c.worker_buffer_size = 2
    c.read_threads = 4
    c.prefetch_batches = 4
    c.sid_storage = "frames"  # "frames": exported .npy frames, a crop reads only its pixels
    # (jaxdark.data.sid_frames); "records": the zlib TFDS records (whole frames per crop)
    c.sid_frames_dir = ""  # exported frames ("": TFDS_DIR/sid_sony_frames/<version>)
    # Synthetic pairs (jaxdark.data.synthetic; configs/synthetic.py turns them on)
    c.photo_dir = ""  # folder of PNG/JPEG/TIFF photos, recursive; "": scikit-image's samples
    c.synthetic_fraction = 0.0  # share of synthetic pairs (configs/synthetic.py: 0.5 with SID,
    # all pairs without it); 0: SID only
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
    c.synthetic_on_device = False  # True: the host sends photo crops and seeds, the pairs are
    # made on the accelerator (jaxdark.data.device_synthesis; synthetic pairs only)
    # Model
    # the network: any jaxdark.models name (or "module:name"); sizes left None take the
    # model's defaults (a size the chosen model does not take must stay None)
    c.model = ml_collections.ConfigDict(
        {
            "name": "lamba2021",  # the published network; also sid_unet, did, sgn, llpacknet
            "features": config_dict.placeholder(int),  # lamba2021: 64; did: 64
            "growth": config_dict.placeholder(int),  # lamba2021: 32
            "dense_layers": config_dict.placeholder(tuple),  # lamba2021: (4, 5, 5)
            "widths": config_dict.placeholder(tuple),  # sid_unet: (32, 64, 128, 256, 512)
            "blocks": config_dict.placeholder(int),  # did: 32
            "start_channels": config_dict.placeholder(int),  # sgn: 32
            "main_blocks": config_dict.placeholder(int),  # sgn: 2
        }
    )
    c.init_weights = ""  # optional .pth, converted checkpoint or training run to start from
    c.compute_dtype = "float32"  # or "bfloat16": bf16 activations, float32 params/loss/grads
    # Optimisation
    c.num_train_steps = 1_000_000
    c.learning_rate = 1e-4
    c.lr_decay_steps = 500_000
    c.lr_decay_factor = 0.1
    c.min_learning_rate = 1e-5
    c.seed = 0
    c.num_devices = 0  # 0: every device of every host
    # Checkpoints and logs
    c.checkpoint_every_steps = 5_000
    c.checkpoints_to_keep = 3
    c.async_checkpointing = True
    c.log_every_steps = 100
    c.image_every_steps = 5_000
    c.num_logged_images = 3
    # Evaluation (eval.py, jaxdark.evaluation) and validation during training
    c.eval_split = "test"  # the split eval.py scores: "test", "val" or "train"
    c.eval_source = "raw"  # "raw": the files in data_dir; "tfds": the prepared dataset
    c.drop_misaligned = False  # True: leave out test scenes 10034, 10045, 10172
    c.eval_tile_size = 0  # 0: whole frames (as the reference); N: tiles of N px (less memory)
    c.eval_tile_overlap = 128
    c.eval_every_steps = 10_000  # validation on a few pairs every N steps (0: never)
    c.validation_split = "val"
    c.num_eval_pairs = 4

    if arg == "local":
        c.batch_size = 4
        c.crop_size = 128
        c.num_train_steps = 200
        c.worker_count = 0
        c.read_threads = 2
        c.checkpoint_every_steps = 50
        c.log_every_steps = 10
        c.image_every_steps = 50
        c.eval_every_steps = 100
        c.num_eval_pairs = 2
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r} of configs/sid_sony.py; expected 'local'")
    return c
