"""benchmarks/cost.py: FLOPs and activation peaks counted on meta, at tiny size."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from flowrvs.presets import build_transformer, build_vae, preset_config
from helpers.benchmarks import import_benchmark

cost = import_benchmark("cost")


def test_live_bytes_counts_what_is_alive():
    x = torch.ones(1000)  # created outside the mode: not counted
    with cost.LiveBytes() as tracker:
        a = x * 2  # 4000 bytes
        b = a + 1  # 8000 alive
        del a
        c = b.view(10, 100)  # a view: nothing new
        b.add_(1)  # in place: nothing new
        d = c * 3  # 8000 alive again (a freed)
    assert tracker.peak == 8000 and tracker.live == 8000
    del b, c, d


def test_meta_counts_a_real_run_plus_its_attention():
    """Counting on meta allocates nothing, gives the FLOPs of a real run of the same module, and also
    counts attention (a real CPU run hides it in a fused kernel the counter does not see): per
    layer ``4 * L_q * L_k * inner`` for self-attention (32 video tokens) and cross-attention (32 text tokens)."""
    # the math path's own matmuls, as the counter sees them on meta, agree with the formula
    torch.manual_seed(0)
    torch.manual_seed(0)
    real = build_transformer("tiny", dvi=False)
    text_dim = real.config.text_dim
    args = lambda device: dict(hidden_states=torch.zeros(1, 16, 2, 8, 8, device=device),  # noqa: E731
                               timestep=torch.full((1,), 1000.0, device=device),
                               encoder_hidden_states=torch.zeros(1, 32, text_dim, device=device), return_dict=False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        real(**args("cpu"))
    meta_module = build_transformer("tiny", dvi=False, device="meta")
    meta = cost.measure("DiT step", meta_module, lambda: meta_module(**args("meta")))
    cfg = real.config
    inner, video_tokens, text_tokens = cfg.num_attention_heads * cfg.attention_head_dim, 2 * 4 * 4, 32
    attention = cfg.num_layers * (4 * video_tokens * video_tokens * inner + 4 * video_tokens * text_tokens * inner)
    assert counter.get_total_flops() > 0 and meta.flops == counter.get_total_flops() + attention
    assert meta.params == sum(p.numel() for p in real.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as math_path:
        meta_module(**args("meta"))
    assert math_path.get_total_flops() == meta.flops


def test_fused_attention_holds_no_score_matrix():
    """The activation peak of attention is its inputs and output, never (B, heads, L_q, L_k)."""
    q = torch.empty(1, 2, 4096, 8, device="meta")
    part = cost.measure("attention", torch.nn.Linear(1, 1),
                        lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert part.flops == 4 * 2 * 4096 * 4096 * 8
    assert part.activation_bytes == 4 * 2 * 4096 * 8  # the output only


def test_report_totals_follow_the_parts():
    row = cost.report("tiny", frames=5, size=(32, 32), sentences=3, steps=2, tokens=4)
    flops = {p["part"]: p["flops"] for p in row["parts"]}
    assert all(v > 0 for v in flops.values())
    per_sentence = flops["text encoder"] + 2 * flops["DiT step"] + flops["mask decoder"]
    assert row["one_more_sentence_flops"] == per_sentence
    assert row["total_flops"] == flops["VAE encoder"] + 3 * per_sentence
    assert row["one_more_step_flops"] == 3 * flops["DiT step"]
    assert row["flops_per_frame"] == pytest.approx(row["total_flops"] / 5)
    longer = cost.report("tiny", frames=9, size=(32, 32), sentences=3, steps=2, tokens=4)
    enc = {p["part"]: p["flops"] for p in longer["parts"]}
    assert enc["VAE encoder"] > flops["VAE encoder"] and enc["DiT step"] > flops["DiT step"]
    assert enc["text encoder"] == flops["text encoder"]  # the sentence does not depend on the video


def test_dvi_doubles_the_patch_embedding_input():
    plain = {p["part"]: p for p in cost.report("tiny", 5, (32, 32), 1, 1, 4)["parts"]}
    dvi = {p["part"]: p for p in cost.report("tiny", 5, (32, 32), 1, 1, 4, dvi=True)["parts"]}
    cfg = preset_config("tiny", "transformer")
    extra_weights = 16 * cfg["num_attention_heads"] * cfg["attention_head_dim"] * 1 * 2 * 2
    assert dvi["DiT step"]["params"] - plain["DiT step"]["params"] == extra_weights
    assert dvi["DiT step"]["flops"] > plain["DiT step"]["flops"]


def test_command_line(capsys):
    assert cost.main(["--preset", "tiny", "--frames", "5", "--size", "32x32", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert row["frames"] == 5 and row["size"] == [32, 32] and len(row["parts"]) == 4
    with pytest.raises(SystemExit):
        cost.main(["--size", "30x32"])
    assert "multiples of 16" in capsys.readouterr().err


@pytest.fixture()
def rem_settings():
    """REM's settings as the package defines them."""
    return cost.rem_settings()


def test_rem_counts_the_stock_model_on_one_clip(rem_settings):
    """REM's DiT is the stock one (16 input channels) and its decoder the stock 3-channel one."""
    row = cost.rem_report("tiny", frames=9, size=(32, 32), sentences=1, tokens=4)
    parts = {p["part"]: p for p in row["parts"]}
    assert list(parts) == ["text encoder", "VAE encoder", "DiT pass (t=0)", "mask decoder (3-channel)"]
    assert parts["DiT pass (t=0)"]["params"] == sum(p.numel() for p in build_transformer("tiny", dvi=False, device="meta").parameters())
    stock = build_vae("tiny", device="meta", mask_decoder=False)
    assert stock.decoder.conv_out.out_channels == 3
    assert parts["mask decoder (3-channel)"]["params"] == sum(p.numel() for p in stock.decoder.parameters())
    assert row["text_len"] == rem_settings["text_len"] and row["clip_frames"] == 9 and row["steps"] == 1
    assert all(p["flops"] > 0 for p in row["parts"])


def test_rem_video_runs_in_its_clips(rem_settings):
    """A 20-frame video runs in two 17-frame clips (the second a tail clip at full length); one
    shorter than the shortest clip runs as one clip padded up to it."""
    row = cost.rem_report("tiny", frames=20, size=(32, 32), sentences=3, tokens=4)
    assert row["clip_frames"] == 17 and row["clips"] == [(0, 17, 0), (3, 20, 14)]
    text, encode, dit, decode = (p["flops"] for p in row["parts"])
    assert row["total_flops"] == 2 * encode + 3 * (text + 2 * (dit + decode))
    assert row["one_more_sentence_flops"] == text + 2 * (dit + decode)
    assert row["one_more_clip_flops"] == encode + 3 * (dit + decode)
    assert row["flops_per_frame"] == pytest.approx(row["total_flops"] / 20)
    short = cost.rem_report("tiny", frames=5, size=(32, 32), sentences=1, tokens=4)
    assert short["clip_frames"] == min(rem_settings["clip_lengths"]) and len(short["clips"]) == 1


def test_rem_command_line(rem_settings, capsys):
    assert cost.main(["--method", "rem", "--preset", "tiny", "--frames", "9", "--size", "32x32", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert row["method"] == "rem" and row["frames"] == 9 and row["size"] == [32, 32] and len(row["parts"]) == 4
    assert cost.main(["--method", "rem", "--preset", "tiny", "--frames", "9", "--size", "32x32"]) == 0
    out = capsys.readouterr().out
    assert "REM, preset tiny" in out and "1 clip(s) of 9" in out and "DiT pass (t=0)" in out
    with pytest.raises(SystemExit) as exit_:
        cost.main(["--method", "rem", "--steps", "2"])
    assert exit_.value.code == 2 and "one DiT pass" in capsys.readouterr().err
