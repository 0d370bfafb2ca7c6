"""A training run whose inputs are unusable fails before it writes anything to its workdir."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jaxdark.imaging.photo import PhotoError
from jaxdark.training import loop
from tests.training.test_nonfinite import _config


def test_a_folder_of_only_damaged_photos_fails_before_run_files(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):  # valid headers (sizes read fine), damaged data
        path = photos / f"p{i}.png"
        cv2.imwrite(str(path), np.random.default_rng(i).integers(0, 255, (300, 300, 3), np.uint8))
        path.write_bytes(path.read_bytes()[:2000])
    (photos / "garbage.jpg").write_bytes(b"not a jpeg at all")
    work = tmp_path / "run"
    config = _config(photo_dir=str(photos), synthetic_val_fraction=0.0)
    with pytest.raises(PhotoError, match="none of the 3 train photos can be read") as info:
        loop.train_and_evaluate(config, work)
    assert "\n" not in str(info.value)
    assert not (work / "checkpoints").exists() and not (work / "config.json").exists()
