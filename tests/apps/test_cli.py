"""The command line itself: a quick parser, ``python -m flowrvs``, and no silently dropped command."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flowrvs.apps.commands
from flowrvs.apps import cli

HEAVY = ["torch", "diffusers", "transformers", "accelerate", "safetensors", "av", "cv2", "scipy", "pycocotools"]


def run_python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_building_the_parser_imports_no_heavy_library():
    """``flowrvs --help`` stays quick because no command imports torch & co. before it runs."""
    code = (
        "import sys, flowrvs, flowrvs.apps.cli\n"
        "flowrvs.apps.cli.build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported while building the parser: {proc.stdout.strip()}"


def test_the_package_imports_torch_only_when_the_pipeline_is_asked_for():
    proc = run_python("-c", "import sys, flowrvs; flowrvs.FlowRVSError; flowrvs.__version__; print('torch' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]
    import flowrvs
    from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline

    assert flowrvs.FlowRVSPipeline is FlowRVSPipeline


def test_python_m_flowrvs_is_the_command_line(tmp_path):
    proc = run_python("-m", "flowrvs", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in cli.COMMANDS:
        assert name in proc.stdout
    proc = run_python("-m", "flowrvs", "synth", str(tmp_path), "--videos", "1", "--frames", "2", "--size", "16x16", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "train" / "meta_expressions.json").is_file()
    proc = run_python("-m", "flowrvs", "synth", str(tmp_path), "--size", "big")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "error" in proc.stderr  # one line, no traceback


def test_every_listed_command_is_registered():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)


def test_a_broken_command_module_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "broken_cmd.py").write_text("import flowrvs_no_such_library\n\ndef register(sub):\n    pass\n")
    monkeypatch.setattr(flowrvs.apps.commands, "__path__", [*flowrvs.apps.commands.__path__, str(tmp_path)])
    listed = list(cli.COMMANDS)
    monkeypatch.setattr(cli, "COMMANDS", [*listed, "broken_cmd"])
    with pytest.raises(ModuleNotFoundError, match="flowrvs_no_such_library"):
        cli.build_parser()
    monkeypatch.setattr(cli, "COMMANDS", [*listed, "not_written"])
    with pytest.raises(ModuleNotFoundError, match="not_written"):
        cli.build_parser()
