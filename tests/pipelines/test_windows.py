"""Tests for flowrvs.pipelines.windows: window plans, blend weights and the streaming logit blender."""

from __future__ import annotations

import pytest
import torch

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.windows import LogitBlender, Window, blend_weights, plan_windows

PLANS = [(n, w, o) for n in (1, 5, 17, 18, 30, 31, 44, 100, 129) for w, o in ((5, 0), (5, 2), (9, 4), (17, 4), (17, 8), (33, 8))]


def coverage(plan: list[Window], num_frames: int) -> list[int]:
    counts = [0] * num_frames
    for w in plan:
        for f in w.frames:
            counts[f] += 1
    return counts


@pytest.mark.parametrize("num_frames,window,overlap", PLANS)
def test_plan_covers_every_frame_with_at_most_two_windows(num_frames, window, overlap):
    plan = plan_windows(num_frames, window, overlap)
    assert [w.index for w in plan] == list(range(len(plan)))
    assert plan[0].start == 0 and plan[-1].stop == num_frames
    assert set(coverage(plan, num_frames)) <= {1, 2}
    for w in plan:
        assert 1 <= len(w) <= window
    for w in plan[:-1]:
        assert len(w) == window  # only the last window may be short
    for a, b in zip(plan, plan[1:]):
        assert a.start < b.start and b.start <= a.stop  # contiguous, in order
        assert a.stop - b.start >= overlap  # neighbours share at least `overlap` frames


def test_plan_examples():
    spans = lambda plan: [(w.start, w.stop) for w in plan]  # noqa: E731
    assert spans(plan_windows(40, 17, 4)) == [(0, 17), (13, 30), (23, 40)]  # last moved back to full length
    assert spans(plan_windows(31, 17, 4)) == [(0, 17), (13, 30), (17, 31)]  # cannot reach into window 0
    assert spans(plan_windows(18, 17, 4)) == [(0, 17), (1, 18)]
    assert spans(plan_windows(34, 17, 0)) == [(0, 17), (17, 34)]
    assert spans(plan_windows(12, 17, 4)) == [(0, 12)]


@pytest.mark.parametrize("window", [None, 0])
def test_whole_video_mode_is_one_window(window):
    assert plan_windows(1000, window, 8) == [Window(0, 0, 1000)]


@pytest.mark.parametrize(
    "args,match",
    [
        ((10, 16, 0), "4k\\+1"),
        ((10, 17, 9), "at most"),
        ((10, 17, -1), "overlap"),
        ((0, 17, 4), "num_frames"),
        ((10, -5, 0), "window"),
        ((10, 17.0, 4), "window"),
        ((10, True, 0), "window"),
    ],
)
def test_plan_rejects_bad_settings(args, match):
    with pytest.raises(FlowRVSError, match=match):
        plan_windows(*args)


@pytest.mark.parametrize("num_frames,window,overlap", PLANS)
def test_blend_weights_sum_to_one_per_frame(num_frames, window, overlap):
    plan = plan_windows(num_frames, window, overlap)
    total = torch.zeros(num_frames)
    for w, weight in zip(plan, blend_weights(plan)):
        assert weight.shape == (len(w),)
        assert (weight > 0).all() and (weight <= 1).all()
        total[w.start : w.stop] += weight
    assert torch.allclose(total, torch.ones(num_frames))


def test_blend_weights_are_a_linear_cross_fade():
    plan = plan_windows(30, 17, 4)  # [0, 17), [13, 30): frames 13..16 shared
    first, second = blend_weights(plan)
    assert torch.allclose(second[:4], torch.tensor([1, 2, 3, 4]) / 5)
    assert torch.allclose(first[13:], torch.tensor([4, 3, 2, 1]) / 5)
    assert (first[:13] == 1).all() and (second[4:] == 1).all()


def constant_logits(plan: list[Window], values: list[float], k: int = 2, h: int = 3, w: int = 4) -> list[torch.Tensor]:
    """Window i's logits are values[i] everywhere, sentence k adds 100 * k."""
    out = []
    for win, value in zip(plan, values):
        per_sentence = torch.tensor([value + 100.0 * s for s in range(k)]).view(k, 1, 1, 1)
        out.append(per_sentence.expand(k, len(win), h, w).clone())
    return out


def blend_all(plan, logits):
    """Every frame of the windows' ``logits`` through one :class:`LogitBlender`, in order."""
    blender = LogitBlender(plan)
    return [frame for window_logits in logits for frame in blender.add(window_logits)]


def test_blender_constants_give_exact_weighted_means_in_the_overlap():
    plan = plan_windows(44, 17, 4)  # [0, 17) [13, 30) [26, 43) [30, 44): the last two share 13 frames
    values = [float(10 * (i + 1)) for i in range(len(plan))]
    frames = list(blend_all(plan, constant_logits(plan, values)))
    assert [f for f, _ in frames] == list(range(44))  # every frame once, in order
    weights = blend_weights(plan)
    for f, logits in frames:
        assert logits.shape == (2, 3, 4)
        covering = [(i, w) for i, w in enumerate(plan) if w.start <= f < w.stop]
        expected = sum(values[i] * float(weights[i][f - w.start]) for i, w in covering)
        if len(covering) == 1:  # outside every overlap the window's logits pass unchanged
            assert expected == values[covering[0][0]]
        assert torch.allclose(logits[0], torch.full((3, 4), expected))
        assert torch.allclose(logits[1], torch.full((3, 4), expected + 100.0))


def test_blender_one_window_is_identity():
    plan = plan_windows(9, None)
    logits = torch.randn(3, 9, 5, 6)
    frames = list(blend_all(plan, [logits]))
    assert [f for f, _ in frames] == list(range(9))
    assert torch.equal(torch.stack([x for _, x in frames], dim=1), logits)


def test_blender_drops_padding_frames():
    plan = plan_windows(7, None)  # one 7-frame window; the model saw 9 (4k+1 padding)
    logits = torch.randn(1, 9, 2, 2)
    frames = LogitBlender(plan).add(logits)
    assert [f for f, _ in frames] == list(range(7))
    assert torch.equal(torch.stack([x for _, x in frames], dim=1), logits[:, :7])


def test_blender_hands_frames_on_as_soon_as_final_and_holds_one_overlap():
    plan = plan_windows(100, 17, 4)
    blender = LogitBlender(plan)
    seen = []
    for i, (win, logits) in enumerate(zip(plan, constant_logits(plan, [1.0] * len(plan), k=1))):
        out = blender.add(logits)
        seen += [f for f, _ in out]
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        assert seen[-1] == (nxt.start - 1 if nxt else 99)  # everything before the next window is out
        assert blender.held_frames == (win.stop - nxt.start if nxt else 0)
        for _, x in out:
            assert torch.allclose(x, torch.ones_like(x))  # equal windows blend to themselves
    assert seen == list(range(100)) and blender.done
    with pytest.raises(ValueError, match="already added"):
        blender.add(torch.zeros(1, 17, 3, 4))


def test_blender_rejects_mismatched_logits():
    plan = plan_windows(30, 17, 4)
    blender = LogitBlender(plan)
    with pytest.raises(ValueError, match="needs logits"):
        blender.add(torch.zeros(1, 16, 3, 4))
    blender.add(torch.zeros(1, 17, 3, 4))
    with pytest.raises(ValueError, match="do not match"):
        blender.add(torch.zeros(2, 17, 3, 4))


def test_blender_one_window_hands_on_views_without_copying():
    logits = torch.randn(2, 5, 3, 3)
    frames = LogitBlender(plan_windows(5, None)).add(logits)
    assert all(x.data_ptr() == logits[:, f].data_ptr() for f, x in frames)
