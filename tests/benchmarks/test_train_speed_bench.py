"""benchmarks/train_speed.py: argument checks and a tiny CPU run (the figures come from GPUs)."""

import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "train_speed.py"
spec = importlib.util.spec_from_file_location("train_speed", PATH)
train_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_speed)


@pytest.mark.parametrize("argv, message", [
    (["--frames", "6"], "4k+1"),
    (["--steps", "0"], "--steps"),
    (["--preset", "nope"], "--preset must be one of"),
])
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        train_speed.main(argv + ["--device", "cpu"])
    assert message in str(err.value)


def test_bad_size_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        train_speed.main(["--size", "480x830"])
    assert "multiples of 16" in capsys.readouterr().err


def test_tiny_run_on_cpu(tmp_path):
    out = tmp_path / "speed.json"
    result = train_speed.main(["--preset", "tiny", "--frames", "5", "--size", "32x48", "--device", "cpu",
                               "--dtype", "float32", "--steps", "2", "--warmup", "1", "--batch", "2", "--json", str(out)])
    assert result == json.loads(out.read_text())
    assert result["processes"] == 1 and result["strategy"] == "none" and result["trainable_parameters"] > 0
    assert result["samples_per_s"] == pytest.approx(2 / result["seconds_per_step"])
    assert result["peak_memory_gib_per_process"] > 0 and result["torch"]
