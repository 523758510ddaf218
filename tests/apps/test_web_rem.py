"""The Gradio page runs a REM model folder as it runs a FlowRVS one: no REM-specific flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.releases import write_rem_checkpoint, write_wan_base

from flowrvs.io.masks import decode_rle

SENTENCES = ["the red circle", "the square on the left"]
SIZE = (32, 32)

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")


@pytest.fixture(scope="module")
def rem_pipe(tmp_path_factory):
    from flowrvs.loading.convert import convert_rem
    from flowrvs.pipelines.loader import load_pipeline

    root = tmp_path_factory.mktemp("web-rem")
    base = write_wan_base(root / "base")
    write_rem_checkpoint(root / "rem.pth", base)
    return load_pipeline(convert_rem(base, root / "rem.pth", root / "model"), device="cpu", dtype="float32")


def test_the_page_segments_an_upload_with_a_rem_model(rem_pipe, tmp_path):
    from flowrvs.apps.web import build_app, default_steps, segment_upload
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video
    from flowrvs.io.read import read_video
    from flowrvs.options import SegmentOptions
    from flowrvs.pipelines.pipeline_rem import REMPipeline

    assert type(rem_pipe) is REMPipeline
    path = tmp_path / "clip.mp4"
    write_video(path, generate_video(3, frames=12, size=(40, 56)).frames, fps=8)  # 12 frames: a clip of 9 + a tail clip
    build_app(rem_pipe, examples_dir=False, result_root=tmp_path / "results").close()  # the page builds as for FlowRVS
    # what the page passes on a click: its steps field's default and the model's settings, but for
    # a small working size (the page's size option, as for FlowRVS; 512x512 takes minutes on a CPU)
    out = segment_upload(rem_pipe, str(path), "\n".join(SENTENCES), default_steps(rem_pipe), tmp_path / "results",
                         options=SegmentOptions(size=SIZE))
    direct = rem_pipe(read_video(path), SENTENCES, size=SIZE)  # REM's own clip plan
    assert out.num_frames == 12 and out.prompts == SENTENCES and len(read_video(out.overlay)) == 12
    index = json.loads((out.folder / "masks.json").read_text())
    got = np.stack([[decode_rle(index["prompts"][k]["masks"][name]) for name in direct.frame_names]
                    for k in range(len(SENTENCES))])
    assert np.array_equal(got, np.stack(direct.masks))
    assert got.shape[-2:] == (40, 56) and 0 < got.mean() < 1  # masks at the upload's size, neither empty nor full
