"""Regression tests of what benchmarks/fuzz.py found in the io readers (issue 24, point 4)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.masks import check_rle, decode_rle, encode_rle
from flowrvs.io.read import open_video


def _gif(path) -> bytes:
    frames = [np.full((16, 24, 3), (40 * t, 200, 90), np.uint8) for t in range(3)]
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=125, loop=0)
    return path.read_bytes()


def test_a_gif_cut_anywhere_is_read_or_refused_in_one_line(tmp_path):
    """Pillow indexes past the buffer of a GIF cut inside a frame header (IndexError, struct.error)."""
    blob = _gif(tmp_path / "whole.gif")
    cut = tmp_path / "cut.gif"
    refused = 0
    for n in range(len(blob)):
        cut.write_bytes(blob[:n])
        try:
            assert sum(1 for _ in open_video(cut)) >= 1
        except FlowRVSError as err:
            assert "\n" not in str(err)
            refused += 1
    assert refused > 0


@pytest.mark.parametrize("rle", [
    {"size": [5, 2], "counts": "0"},  # covers 0 of 10 pixels: pycocotools decoded uninitialised memory
    {"size": [4, 4], "counts": ""},
    {"size": [4, 4], "counts": [3, 2]},  # list counts short of 16 pixels
    {"size": [2, 2], "counts": [2, 2, 1]},  # one pixel too many
    {"size": [2, 2], "counts": [5, -1]},  # runs backwards
    {"size": [2, 2], "counts": [2**70, 4]},  # past what numpy or pycocotools hold
    {"size": [2, 2], "counts": 1.5},  # was a TypeError
    {"counts": "04"},  # no size: was a KeyError
    {"size": [2], "counts": "04"},  # was an IndexError
    {"size": [2**62, 2], "counts": "0"},  # was a MemoryError of 4 EiB
    {"size": [-1, 4], "counts": "0"},  # was an OverflowError
    {"size": [True, 4], "counts": "0"},
    {"size": [2, 2], "counts": "\x80\x00"},  # bytes outside the alphabet
    {"size": [2, 2], "counts": "4W"},  # ends inside a number (0x20 set on the last digit)
    {"size": [2, 2], "counts": "WWWWWWWWWWWW4"},  # a run of 13 digits
    "not a dict",
])
def test_a_malformed_rle_raises_value_error(rle):
    with pytest.raises(ValueError):
        decode_rle(rle)


def test_valid_rles_still_decode_exactly():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(s) for s in rng.integers(1, 30, 2))
        mask = rng.random((h, w)) < rng.random()
        rle = encode_rle(mask)
        assert check_rle(rle) == (h, w)
        assert np.array_equal(decode_rle(rle), mask)
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([2], mask.T.reshape(-1).astype(int), [2])))))
        counts = ([0] if mask.T.reshape(-1)[0] else []) + [int(r) for r in runs]  # uncompressed list counts
        assert np.array_equal(decode_rle({"size": [h, w], "counts": counts}), mask)
    assert decode_rle({"size": [0, 0], "counts": ""}).shape == (0, 0)


def test_a_container_whose_codec_id_is_unknown_is_one_line(tmp_path):
    """PyAV gives such a stream no codec context (None): reading its width was an AttributeError."""
    import av

    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "yuv420p"
        for t in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 24, 3), 40 * t, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    blob = path.read_bytes()
    assert b"V_MPEG4/ISO/ASP" in blob
    path.write_bytes(blob.replace(b"V_MPEG4/ISO/ASP", b"V_NOSUCH/CODEC!"))
    with pytest.raises(FlowRVSError, match="codec is unknown"):
        open_video(path)
