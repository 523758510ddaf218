import numpy as np
import pytest
import torch

from flowrvs.io.frames import fit_size, frames_to_tensor, logits_to_input_shape, masks_to_tensor, padded_length


@pytest.mark.parametrize(
    "hw, box, expected",
    [
        ((480, 832), (480, 832), (480, 832)),
        ((720, 1280), (480, 832), (464, 832)),  # 720p: 1280 -> 832 sets the scale, 468 rounds to 464
        ((1280, 720), (480, 832), (832, 464)),  # portrait uses the box transposed
        ((33, 47), (480, 832), (480, 688)),  # small frames are scaled up into the box
        ((5, 300), (480, 832), (16, 832)),  # at least one multiple of 16
    ],
)
def test_fit_size(hw, box, expected):
    h, w = fit_size(*hw, box)
    assert (h, w) == expected
    assert h % 16 == 0 and w % 16 == 0


@pytest.mark.parametrize("n, expected", [(1, 1), (2, 5), (4, 5), (5, 5), (6, 9), (8, 9), (9, 9), (17, 17)])
def test_padded_length(n, expected):
    assert padded_length(n) == expected


def test_frames_to_tensor_pads_with_last_frame_and_scales():
    frames = np.zeros((6, 20, 30, 3), np.uint8)
    frames[-1] = 255
    video = frames_to_tensor(frames, (16, 32))
    assert video.shape == (1, 3, 9, 16, 32)
    assert torch.allclose(video[:, :, 5:], torch.ones(1))  # padding repeats the last (white) frame
    assert torch.allclose(video[:, :, :5], -torch.ones(1))


def test_masks_and_logits_round_trip_shape():
    masks = np.zeros((3, 21, 35), bool)
    masks[:, 5:15, 10:25] = True
    tensor = masks_to_tensor(masks, (16, 32))
    assert tensor.shape == (1, 5, 16, 32)
    back = logits_to_input_shape(tensor[0] * 2 - 1, 3, 21, 35)
    assert back.shape == (3, 21, 35)
    iou = ((back > 0).numpy() & masks).sum() / ((back > 0).numpy() | masks).sum()
    assert iou > 0.8
