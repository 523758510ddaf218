"""Benchmark output layouts (eval/layouts.py) on a stub dataset: paths, zip names, DAVIS paint order."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from flowrvs.data import open_dataset
from flowrvs.data.base import Expression
from flowrvs.data.davis import RefDAVISDataset
from flowrvs.errors import FlowRVSError
from flowrvs.io.writer import DAVIS_PALETTE
from flowrvs.eval.layouts import (
    Layout,
    davis_paint_order,
    davis_set_dir,
    davis_sets,
    write_davis_official,
    write_submission_zip,
)
from flowrvs.eval.benchmark import score_davis_split
from helpers import ytvos_davis as fake

FRAMES = ["00000", "00005"]


class StubSplit:
    """Two videos, three expressions; annotator sets {v1_0, v2_0} and {v1_1}."""

    def __init__(self):
        self.exprs = {"v1": [Expression("v1", "0", "a", (1,)), Expression("v1", "1", "b", (2,))],
                      "v2": [Expression("v2", "0", "c", (1,))]}

    def videos(self):
        return sorted(self.exprs)

    def frame_names(self, video):
        return list(FRAMES)

    def expressions(self, video):
        return list(self.exprs[video])

    def annotator_labels(self):
        return [0, 1]

    def annotator_sets(self):
        return [{"v1_0", "v2_0"}, {"v1_1"}]


@pytest.mark.parametrize("name, folder, arc", [
    ("mevis", "predictions/v1/1", "v1/1/00005.png"),
    ("ytvos", "predictions/Annotations/v1/1", "Annotations/v1/1/00005.png"),
    ("davis", "predictions/anno_1/v1/1", None),
])
def test_paths_of_each_benchmark(tmp_path, name, folder, arc):
    layout = Layout(name, tmp_path, StubSplit())
    expr = StubSplit().exprs["v1"][1]
    assert layout.expression_dir(expr) == tmp_path / folder
    assert layout.predictions == tmp_path / "predictions"
    if arc is None:
        assert layout.zip_path is None
    else:
        assert layout.zip_path == tmp_path / "submission.zip" and layout.arcname(expr, "00005") == arc


def test_write_masks_done_and_zip(tmp_path):
    split = StubSplit()
    layout = Layout("ytvos", tmp_path, split)
    masks = np.zeros((2, 4, 5), bool)
    masks[1, 1:3, 1:4] = True
    for video in split.videos():
        for expr in split.expressions(video):
            assert not layout.expression_done(expr, FRAMES)
            layout.write_masks(expr, masks, FRAMES)
            assert layout.expression_done(expr, FRAMES)
    with Image.open(layout.expression_dir(split.exprs["v1"][0]) / "00005.png") as img:
        np.testing.assert_array_equal(np.asarray(img), masks[1].astype(np.uint8) * 255)
    path = write_submission_zip(layout, split.videos())
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [f"Annotations/{v}/{e}/{f}.png" for v, e in [("v1", "0"), ("v1", "1"), ("v2", "0")]
                                 for f in FRAMES]


def test_davis_masks_are_indexed_pngs(tmp_path):
    split = StubSplit()
    layout = Layout("davis", tmp_path, split)
    mask = np.zeros((1, 3, 3), bool)
    mask[0, 1, 1] = True
    folder = layout.write_masks(split.exprs["v2"][0], mask, FRAMES[:1])
    assert folder == tmp_path / "predictions" / davis_set_dir(0) / "v2" / "0"
    with Image.open(folder / "00000.png") as img:
        assert img.mode == "P" and img.getpalette()[:6] == DAVIS_PALETTE[:6]
        np.testing.assert_array_equal(np.asarray(img), mask[0].astype(np.uint8))


def test_remove_stale_temps_beside_expression_folders(tmp_path):
    split = StubSplit()
    layout = Layout("mevis", tmp_path, split)
    layout.write_masks(split.exprs["v1"][0], np.zeros((2, 2, 2), bool), FRAMES)
    stale = tmp_path / "predictions" / "v1" / ".1.abcd.tmp"
    stale.mkdir()
    layout.remove_stale_temps(split.videos())
    assert not stale.exists() and layout.expression_done(split.exprs["v1"][0], FRAMES)


def test_davis_sets_and_paint_order():
    split = StubSplit()
    assert davis_sets(split) == [(0, 0, {"v1_0", "v2_0"}), (1, 1, {"v1_1"})]
    assert davis_sets(split, ["v2"]) == [(0, 0, {"v2_0"})]
    b, a = Expression("v", "1", "b", (3,)), Expression("v", "0", "a", (1,))
    assert davis_paint_order([b, a]) == [(1, a), (3, b)]
    assert [v for v, _ in davis_paint_order([Expression("v", "1", "x"), Expression("v", "0", "y")])] == [1, 2]
    with pytest.raises(FlowRVSError, match="obj_id 21"):
        davis_paint_order([Expression("v", "0", "a", (21,))])


def test_official_layout_covers_every_set_and_video(tmp_path):
    """write_davis_official: a video with no sentence of a set still gets that set's (empty) PNGs."""
    root = fake.make_davis(tmp_path / "davis")
    meta_path = root / "meta_expressions" / "valid" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    for exp_id in ("2", "3"):  # dogs: no sentence of sets 2 and 3
        del meta["videos"]["dogs"]["expressions"][exp_id]
    meta_path.write_text(json.dumps(meta))
    ds = RefDAVISDataset(root, "valid")
    layout = Layout("davis", tmp_path / "out", ds)
    for v in ds.videos():
        for e in ds.expressions(v):
            layout.write_masks(e, ds.load_mask(e), ds.frame_names(v))  # perfect predictions
    official = write_davis_official(layout, ds.videos())
    with Image.open(official / "anno_3" / "dogs" / "00005.png") as img:
        assert img.mode == "P" and not np.asarray(img).any()
    with Image.open(official / "anno_1" / "bike" / "00005.png") as img:
        np.testing.assert_array_equal(np.asarray(img), fake.annotation(1))
    m = score_davis_split(open_dataset("davis", root), official)
    # dogs' object 2 has no sentence anywhere; dogs has no sentence at all in sets 2 and 3:
    # sets 0, 1 score 3 of 4 objects, sets 2, 3 only bike's two
    assert [s["J"] for s in m["annotator_sets"]] == [0.75, 0.75, 0.5, 0.5]
    assert m["J"] == 0.625
    assert score_davis_split(open_dataset("davis", root), layout.predictions) == m


@pytest.mark.parametrize("name, values", [("revos", {0, 1}), ("long-rvos", {0, 255}), ("mevis", {0, 255})])
def test_pixel_values_of_each_benchmark(tmp_path, name, values):
    split = StubSplit()
    layout = Layout(name, tmp_path, split)
    masks = np.zeros((2, 4, 5), bool)
    masks[:, 1:3, 1:4] = True
    folder = layout.write_masks(split.exprs["v1"][0], masks, FRAMES)
    assert folder == tmp_path / "predictions" / "v1" / "0"
    assert (layout.zip_path is None) == (name in ("revos", "long-rvos"))
    with Image.open(folder / "00000.png") as img:
        assert img.mode == "L" and set(np.unique(np.asarray(img))) == values
