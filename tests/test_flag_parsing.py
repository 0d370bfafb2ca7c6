"""train.py and eval.py report bad flags on one line, with exit status 2."""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "--config.batch_sise=3",
            "the config has no field 'batch_sise' (did you mean 'batch_size'?)",
        ),
        ("--config.batch_size=abc", "flag --config.batch_size=abc: invalid literal for int()"),
        (
            "--config.model.featres=8",
            "the config has no field 'featres' (did you mean 'features'?)",
        ),
    ],
)
def test_bad_config_flag_is_one_line(tmp_path, script, flag, message):
    r = subprocess.run(
        [sys.executable, script, "--config=configs/sid_sony.py", f"--workdir={tmp_path}", flag],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err == [f"{script}: error: {err[0].split(': error: ', 1)[1]}"], r.stderr
    assert message in err[0]
