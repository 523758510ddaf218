"""Reading prediction PNGs of any tool as arrays (eval/predictions.py)."""

import numpy as np
import pytest
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.eval.predictions import davis_index_frame, read_davis_result, read_prediction_mask


def test_read_prediction_mask_flavours(tmp_path):
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but only the object is opaque
    rgba[m, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_prediction_mask(tmp_path / "a.png"), m)
    Image.fromarray(m.astype(np.uint8)).save(tmp_path / "b.png")  # 0/1 values
    np.testing.assert_array_equal(read_prediction_mask(tmp_path / "b.png"), m)
    (tmp_path / "c.png").write_bytes(b"garbage")
    with pytest.raises(FlowRVSError, match="c.png"):
        read_prediction_mask(tmp_path / "c.png")
    assert isinstance(excinfo_cause(tmp_path / "c.png", read_prediction_mask), OSError)  # the cause is kept


def excinfo_cause(path, read):
    with pytest.raises(FlowRVSError) as excinfo:
        read(path)
    return excinfo.value.__cause__


def test_read_davis_result_takes_indexed_pngs_of_proposal_ids(tmp_path):
    ids = np.array([[0, 1, 2], [3, 0, 20]], np.uint8)
    img = Image.fromarray(ids, mode="P")
    img.putpalette([0] * 768)
    img.save(tmp_path / "ok.png")
    np.testing.assert_array_equal(read_davis_result(tmp_path / "ok.png"), ids)
    Image.fromarray((ids > 0).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    with pytest.raises(FlowRVSError, match="0/255 mask"):
        read_davis_result(tmp_path / "mask.png")
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(FlowRVSError, match="'RGB'"):
        read_davis_result(tmp_path / "rgb.png")
    assert isinstance(excinfo_cause(tmp_path / "none.png", read_davis_result), FileNotFoundError)


def test_davis_index_frame_paints_in_order_later_wins(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    a[:2] = 255
    b = np.zeros((4, 4), np.uint8)
    b[1:3] = 255
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    index, missing = davis_index_frame([(1, tmp_path / "a.png"), (2, tmp_path / "b.png")], (4, 4))
    np.testing.assert_array_equal(index[:, 0], [1, 2, 2, 0])
    assert missing == 0
    index, missing = davis_index_frame([(1, tmp_path / "a.png"), (2, tmp_path / "gone.png")], (4, 4),
                                       allow_missing=True)
    assert missing == 1 and index.max() == 1
    with pytest.raises(FlowRVSError, match="3x4"):
        davis_index_frame([(1, tmp_path / "a.png")], (4, 3))
