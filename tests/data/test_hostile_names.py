"""Names read from dataset files are checked before they become paths (issue 24, point 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrvs.data.mevis import MeViSDataset
from flowrvs.data.ytvos import RefYouTubeVOSDataset
from flowrvs.errors import FlowRVSError
from flowrvs.io.names import check_name, name_problem
from helpers.mevis import make_fake_mevis
from helpers.ytvos_davis import make_ytvos

BAD = ["../../../escaped", "/tmp/escaped_abs", "..", ".", "", "a/b", "a\\b", "nul\x00byte", "C:evil"]
GOOD = ["0", "00005", "vid_A-1.2", "exp 3", "日本語"]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_refused(name):
    assert name_problem(name) is not None
    with pytest.raises(FlowRVSError, match="meta.json: bad expression id"):
        check_name(name, "meta.json", "expression id")


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name):
    assert name_problem(name) is None and check_name(name, "f") == name


def _edit_meta(path: Path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta["videos"])
    path.write_text(json.dumps(meta))


def _rename_first_expression(videos: dict, new_id: str) -> None:
    vid = sorted(videos)[0]
    exps = videos[vid]["expressions"]
    first = sorted(exps)[0]
    exps[new_id] = exps.pop(first)


@pytest.mark.parametrize("field", ["expression id", "video id", "frame name"])
def test_mevis_refuses_escaping_names(tmp_path, field):
    root = make_fake_mevis(tmp_path / "mevis")
    meta_path = root / "valid_u" / "meta_expressions.json"
    if field == "expression id":
        _edit_meta(meta_path, lambda v: _rename_first_expression(v, "../../../escaped"))
    elif field == "video id":
        _edit_meta(meta_path, lambda v: v.__setitem__("/abs/escaped", v.pop(sorted(v)[0])))
    else:
        _edit_meta(meta_path, lambda v: v[sorted(v)[0]]["frames"].__setitem__(0, "../up"))
    with pytest.raises(FlowRVSError, match=f"meta_expressions.json: bad {field}"):
        MeViSDataset(root, "valid_u")


def test_ytvos_refuses_escaping_expression_id(tmp_path):
    root = make_ytvos(tmp_path / "ytvos")
    meta_path = root / "meta_expressions" / "valid" / "meta_expressions.json"
    _edit_meta(meta_path, lambda v: _rename_first_expression(v, "/escaped_abs"))
    with pytest.raises(FlowRVSError, match="bad expression id '/escaped_abs'"):
        RefYouTubeVOSDataset(root, "valid")


def test_evaluate_writes_nothing_for_an_escaping_id(tmp_path, capsys):
    """The issue's reproduction: exit 2, one line naming the file and the id, nothing written."""
    from flowrvs.apps.cli import main

    root = make_fake_mevis(tmp_path / "data" / "mevis")
    _edit_meta(root / "valid_u" / "meta_expressions.json", lambda v: _rename_first_expression(v, "../../../escaped"))
    out = tmp_path / "A" / "B" / "OUT"
    code = main(["evaluate", "--dataset", "mevis", "--root", str(root), "--split", "valid_u", "--out", str(out),
                 "--model", "tiny-synthetic", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "meta_expressions.json" in err[0] and "'../../../escaped'" in err[0]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.relative_to(tmp_path).parts]
    assert written == []
