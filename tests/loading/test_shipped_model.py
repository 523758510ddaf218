"""The shipped ``tiny-synthetic`` model: a diffusers pipeline folder that gives the masks it always gave."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowrvs.errors import FlowRVSError
from flowrvs.loading.model_folder import check_model_dir
from flowrvs.loading.resolve import resolve_model_dir, shipped_model_dir
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline


def _video(t: int, h: int, w: int) -> np.ndarray:
    """``(t, h, w, 3)`` uint8: a red disc moving right above a blue square moving left, on dark grey."""
    yy, xx = np.mgrid[:h, :w]
    frames = np.full((t, h, w, 3), 40, np.uint8)
    r = min(h, w) / 6
    for i in range(t):
        cx = w * (0.25 + 0.5 * i / max(t - 1, 1))
        frames[i][(yy - h / 3) ** 2 + (xx - cx) ** 2 < r * r] = (220, 30, 30)
        sx = w * (0.75 - 0.5 * i / max(t - 1, 1))
        frames[i][(abs(yy - 2 * h / 3) < r) & (abs(xx - sx) < r)] = (30, 60, 220)
    return frames


@pytest.fixture(scope="module")
def shipped():
    return FlowRVSPipeline.from_pretrained("tiny-synthetic")


def test_the_shipped_folder_is_a_diffusers_pipeline_folder_with_its_own_settings(shipped):
    folder = shipped_model_dir("tiny-synthetic")
    index = json.loads((folder / "model_index.json").read_text())
    for part in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert isinstance(index[part], list) and (folder / part).is_dir()
    assert resolve_model_dir("tiny-synthetic") == folder
    assert shipped.components.keys() == {"transformer", "vae", "text_encoder", "tokenizer", "scheduler"}
    # the settings it was tuned with: the oriented box, raw logits, threshold -6 (see its README)
    config = shipped.config
    assert (config.resize_rule, config.clamp_logits, config.mask_threshold) == ("oriented", False, -6.0)
    assert (config.size, config.text_len, config.num_steps, config.flow_shift) == ((96, 160), 32, 1, 3.0)
    assert shipped.dvi


def test_the_shipped_model_gives_the_masks_of_its_first_format(shipped):
    """Masks and logits pinned from the 0.1 folder it was before the re-save.

    The reference values were computed at commit 2c58e72, before ``tiny-synthetic`` was re-saved
    with ``pipe.save_pretrained``: that commit loaded the 0.1 folder (``model_index.json`` of
    settings only) through ``FlowRVSPipeline._from_legacy_folder`` and
    ``FlowRVSConfig.from_legacy_index``, on CPU in float32, and ran it on these two videos with
    the default call (one step, the model's box and threshold, ``return_logits=True``). The
    re-saved folder gave bit-identical logits there; its weight files are byte-identical.
    """
    landscape = shipped(_video(9, 96, 160), prompt=["the red circle", "the blue square"], return_logits=True)
    assert landscape.working_size == (96, 160)
    # pixel counts, not a hash: a logit within float32 rounding of the threshold flips on some
    # CPUs (one pixel of 276480 on a Sapphire Rapids, 2026-12-03), which a hash cannot tolerate
    assert abs(int(np.stack(landscape.masks).sum()) - 16691) <= 3
    assert all(abs(int(m[4].sum()) - n) <= 2 for m, n in zip(landscape.masks, [707, 946]))
    np.testing.assert_allclose(
        landscape.logits[0][4, 32, ::16],
        [-16.323, -23.663, -22.803, -22.988, -14.498, 8.880, -20.835, -23.723, -23.720, -23.728], atol=2e-3)
    np.testing.assert_allclose(
        landscape.logits[1][4, 64, ::16],
        [-16.318, -23.735, -23.743, -23.908, -5.926, 10.761, -8.620, -22.717, -22.479, -23.745], atol=2e-3)
    # a portrait video: the oriented rule turns the box (the public rule would give 96x48)
    portrait = shipped(_video(5, 160, 96), prompt="the red circle", return_logits=True)
    assert portrait.working_size == (160, 96)
    assert abs(int(portrait.masks[0].sum()) - 2744) <= 2
    np.testing.assert_allclose(portrait.logits[0][2, 53, ::16], [-16.222, -22.125, -4.091, 8.811, -21.271, -23.688],
                               atol=2e-3)


def test_a_folder_whose_index_names_no_components_is_refused(tmp_path):
    """A ``model_index.json`` of settings only is not a diffusers pipeline folder."""
    import shutil

    shutil.copytree(shipped_model_dir("tiny-synthetic"), tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    for part in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        del index[part]
    (tmp_path / "m" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FlowRVSError, match="does not name its transformer, vae, text_encoder, tokenizer"):
        check_model_dir(tmp_path / "m")
    (tmp_path / "m" / "model_index.json").write_text("{not json")
    with pytest.raises(FlowRVSError, match="cannot read") as info:
        FlowRVSPipeline.from_pretrained(tmp_path / "m")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
