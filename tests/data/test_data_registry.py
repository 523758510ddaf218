"""The one dataset registry: every reader opens through flowrvs.data.open_dataset."""

import pytest

from flowrvs.data import BENCHMARKS, DEFAULT_SPLITS, REGISTRY, open_dataset
from flowrvs.data.mevis import MeViSDataset
from flowrvs.errors import FlowRVSError
from flowrvs.data.synth.writer import write_split


def test_registry_opens_by_name_with_default_split(tmp_path):
    write_split(tmp_path, "valid_u", videos=1, frames=5, size=(32, 48), seed=0, progress=False)
    dataset = open_dataset("MeViS", tmp_path)
    assert isinstance(dataset, MeViSDataset) and dataset.split == "valid_u"
    assert set(BENCHMARKS) == {"mevis", "ytvos", "davis", "long-rvos", "revos"} and "refcoco" in REGISTRY
    assert "refcoco" not in BENCHMARKS
    assert DEFAULT_SPLITS == {"mevis": "valid_u", "ytvos": "valid", "davis": "valid", "long-rvos": "valid",
                              "revos": "valid"}
    with pytest.raises(FlowRVSError, match="unknown dataset 'coco'; choose one of mevis, ytvos, davis, refcoco, long-rvos, revos"):
        open_dataset("coco", tmp_path)
    with pytest.raises(FlowRVSError, match="does not exist"):
        open_dataset("mevis", tmp_path / "nope")
