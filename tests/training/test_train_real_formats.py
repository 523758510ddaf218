"""Training reads every real dataset format, alone and mixed (tiny fakes written on the fly)."""

import numpy as np
import pytest

from flowrvs.pipelines.loader import load_pipeline
from flowrvs.data.synth.writer import write_split
from flowrvs.training.config import config_from_dict
from flowrvs.training.trainer import train
from helpers.refcoco import make_coco
from helpers.ytvos_davis import make_davis, make_ytvos


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("formats")
    write_split(base / "mevis", "train", videos=2, frames=5, size=(32, 48), seed=0, progress=False)
    return {
        "mevis": (base / "mevis", "train", None),
        "ytvos": (make_ytvos(base / "ytvos"), "train", None),
        "davis": (make_davis(base / "davis"), "valid", None),
        "refcoco": (make_coco(base / "coco"), "train", "refcoco"),
    }


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kinds", [["ytvos"], ["davis"], ["refcoco"], ["mevis", "ytvos", "davis", "refcoco"]])
def test_one_flow_step_on_each_format_and_a_mixture(tmp_path, roots, kinds):
    datasets = [{"type": k, "root": str(roots[k][0]), "split": roots[k][1], "name": roots[k][2], "weight": 1.0}
                for k in kinds]
    before = {k: _snapshot(roots[k][0]) for k in kinds}
    config = config_from_dict({
        "output_dir": str(tmp_path / "run"), "stage": "flow", "device": "cpu", "progress": False,
        "model": {"preset": "tiny", "text_len": 16},
        "data": {"datasets": datasets, "num_frames": 5, "size": [32, 48], "hflip_p": 0.5},
        "optim": {"steps": 2 * len(kinds), "lr": 1e-3},
    })
    result = train(config)
    assert len(result.losses) == 2 * len(kinds) and all(np.isfinite(list(result.losses.values())))
    pipe = load_pipeline(result.model_dir)
    assert pipe(np.zeros((3, 30, 40, 3), np.uint8), ["a box"]).masks[0].shape == (3, 30, 40)
    for k in kinds:  # nothing in a dataset is modified
        assert _snapshot(roots[k][0]) == before[k]
