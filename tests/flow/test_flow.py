import pytest
import torch

from flowrvs import flow


def test_path_endpoints_and_velocity():
    src, tgt = torch.randn(2, 3, 5, 4, 4), torch.randn(2, 3, 5, 4, 4)
    assert torch.equal(flow.interpolate(src, tgt, torch.ones(2)), src)
    assert torch.equal(flow.interpolate(src, tgt, torch.zeros(2)), tgt)
    t = torch.tensor([0.25, 0.75])
    x = flow.interpolate(src, tgt, t)
    assert torch.allclose(x[0], 0.25 * src[0] + 0.75 * tgt[0])
    u = flow.target_velocity(src, tgt)
    # moving from x_t by -t*u lands on the target, by (1-t)*u on the source
    assert torch.allclose(x - t.view(-1, 1, 1, 1, 1) * u, tgt, atol=1e-6)
    assert torch.allclose(x + (1 - t).view(-1, 1, 1, 1, 1) * u, src, atol=1e-6)


def test_uniform_time_range():
    t = flow.sample_uniform_time(10000, torch.Generator().manual_seed(0))
    assert t.shape == (10000,) and t.min() > 0 and t.max() <= 1
    assert abs(t.mean().item() - 0.5) < 0.02


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_bbs_share_at_boundary(p):
    t = flow.sample_bbs_time(20000, p, torch.Generator().manual_seed(1))
    share = (t == 1).float().mean().item()
    assert abs(share - p) < 0.015
    assert t.min() > 0 and t.max() <= 1
    with pytest.raises(ValueError):
        flow.sample_bbs_time(3, 1.5)


def test_start_point_augmentation_strength():
    mean, std = torch.randn(1, 16, 2, 4, 4), torch.rand(1, 16, 2, 4, 4) + 0.5
    assert torch.equal(flow.perturb_start_point(mean, std, 0.0), mean)
    g = torch.Generator().manual_seed(0)
    one = flow.perturb_start_point(mean, std, 1.0, g)
    g = torch.Generator().manual_seed(0)
    half = flow.perturb_start_point(mean, std, 0.5, g)
    assert torch.allclose(half - mean, 0.5 * (one - mean), atol=1e-6)
    assert not torch.allclose(one, mean)


@pytest.mark.parametrize(
    "steps, expected",
    [(1, [1000]), (2, [1000, 750]), (4, [1000, 900, 750, 501])],
)
def test_inference_grid(steps, expected):
    assert flow.public_timesteps(steps, shift=3.0) == expected
    assert flow.NUM_TRAIN_TIMESTEPS == 1000


def test_shift_keeps_ends():
    t = torch.tensor([0.0, 1.0])
    assert torch.equal(flow.shift_time(t, 3.0), t)
    assert flow.shift_time(torch.tensor(0.5), 3.0) == 0.75


@pytest.mark.parametrize("prediction", ["velocity", "mask"])
def test_parametrization_target_and_velocity_agree(prediction):
    """A model that outputs the exact target yields the exact path velocity, so one Euler step
    from the start point lands on the mask latent."""
    z_video, z_mask = torch.randn(3, 4, 2, 2, 2, dtype=torch.float64), torch.randn(3, 4, 2, 2, 2, dtype=torch.float64)
    p = flow.FlowParametrization("video", prediction)
    x1 = p.start(z_video)
    assert x1 is z_video
    t = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    x_t = flow.interpolate(x1, z_mask, t)
    v = p.velocity(p.target(x1, z_mask), x_t, t)
    assert torch.allclose(v, z_video - z_mask, atol=1e-12)
    out = x1 - p.velocity(p.target(x1, z_mask), x1, torch.ones(3, dtype=torch.float64))  # one step, t = 1 -> 0
    assert torch.allclose(out, z_mask, atol=1e-12)
    with pytest.raises(ValueError):
        flow.FlowParametrization("video", "epsilon")


def test_noise_source_and_per_sample_generators():
    z = torch.zeros(2, 4, 1, 2, 2)
    p = flow.FlowParametrization("noise", "velocity")
    gens = lambda: [torch.Generator().manual_seed(s) for s in (7, 8)]
    both = p.start(z, gens())
    assert both.shape == z.shape and not torch.equal(both[0], both[1])
    # sample i depends on its own generator only: a batch split in two draws the same numbers
    alone = p.start(z[1:], [torch.Generator().manual_seed(8)])
    assert torch.equal(alone[0], both[1])
    t = flow.sample_bbs_time(2, 0.5, gens())
    assert torch.equal(flow.sample_bbs_time(1, 0.5, [torch.Generator().manual_seed(8)]), t[1:])
