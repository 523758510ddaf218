"""benchmarks/conv_shapes.py at tiny size: every convolution of a VAE part, in the part and alone."""

import json

import torch

from helpers.benchmarks import import_benchmark

conv_shapes = import_benchmark("conv_shapes")


def test_records_every_convolution_call_with_its_flops():
    conv3 = torch.nn.Conv3d(4, 6, 3, stride=(1, 2, 2), padding=1)
    conv2 = torch.nn.Conv2d(6, 6, 1)
    x = torch.randn(1, 4, 3, 8, 10)
    shapes = conv_shapes.record_convolutions(lambda: [conv2(conv3(x)[:, :, 0]) for _ in range(2)])
    assert torch.nn.functional.conv3d.__name__ == "conv3d"  # unwrapped after
    by_dims = {len(s.input): s for s in shapes.values()}
    assert set(by_dims) == {4, 5} and all(len(s.seconds) == 2 for s in shapes.values())
    three = by_dims[5]
    assert three.input == (1, 4, 3, 8, 10) and three.stride == (1, 2, 2) and three.padding == (1, 1, 1)
    assert three.flops == 2 * (1 * 6 * 3 * 4 * 5) * 4 * 27  # output elements x C_in x 3x3x3, multiply and add
    assert by_dims[4].flops == 2 * (6 * 4 * 5) * 6
    for shape in shapes.values():
        conv_shapes.time_alone(shape, repeats=2)
        assert 0 < shape.alone_best_s <= shape.alone_median_s


def test_tiny_vae_part(tmp_path):
    out = tmp_path / "shapes.json"
    assert conv_shapes.main(["--preset", "tiny", "--folder", str(tmp_path / "model"), "--frames", "5", "--size", "32x64",
                             "--part", "vae-decode", "--repeats", "1", "--json", str(out)]) == 0
    shapes = json.loads(out.read_text())["shapes"]
    assert len(shapes) > 3 and all(s["rate_alone"] > 0 and s["rate_in_part"] > 0 for s in shapes)
    assert {len(s["input"]) for s in shapes} == {4, 5}  # the decoder's spatial upsampling runs 2-d convolutions
