"""runtime/distributed.py: which process this is, from torchrun's environment."""

import pytest

from flowrvs.errors import FlowRVSError
from flowrvs.runtime.distributed import Process, barrier, from_environment


@pytest.fixture
def env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def test_one_process_without_torchrun(env):
    env()
    process = from_environment()
    assert process == Process() and process.main and not process.distributed
    barrier(process)  # no group needed with one process


def test_torchrun_environment(env):
    env(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1")
    process = from_environment()
    assert process == Process(1, 2, 1) and not process.main and process.distributed


@pytest.mark.parametrize("values, match", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "outside"),
])
def test_bad_environment_is_a_user_error(env, values, match):
    env(**values)
    with pytest.raises(FlowRVSError, match=match) as excinfo:
        from_environment()
    if match != "outside":
        assert isinstance(excinfo.value.__cause__, ValueError)
