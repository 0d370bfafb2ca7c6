"""train.py and eval.py report bad flags on one line, with exit status 2."""

import subprocess
import sys

import pytest

from tests.support.paths import REPO_ROOT


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


def _one_line(script, *args):
    r = subprocess.run(
        [sys.executable, script, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    err = [line for line in r.stderr.splitlines() if line.strip() and "W1" not in line[:3]]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert len(err) == 1 and err[0].startswith(f"{script}: error: "), r.stderr
    return err[0]


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_missing_or_broken_config_file_is_one_line(tmp_path, script):
    line = _one_line(script, "--config=configs/missing.py", f"--workdir={tmp_path}")
    assert "cannot load the config file configs/missing.py" in line
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    assert "broken.py" in _one_line(script, f"--config={broken}", f"--workdir={tmp_path}")


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_workdir_under_a_file_is_one_line(tmp_path, script):
    (tmp_path / "plain").write_text("x")
    line = _one_line(
        script,
        "--config=configs/sid_sony.py",
        f"--workdir={tmp_path / 'plain' / 'run'}",
        f"--config.data_dir={tmp_path}",
    )
    assert "is a file, not a folder" in line
