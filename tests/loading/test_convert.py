"""`flowrvs convert` on a tiny fake release written in the public formats."""

import pickle

import numpy as np
import pytest
import torch

from helpers.releases import write_dit_checkpoint, write_tuned_vae, write_wan_base

from flowrvs.loading.state_dicts import load_checked
from flowrvs.apps.cli import main
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.presets import build_transformer


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A Wan diffusers folder (3-channel VAE) plus the tuned VAE checkpoint."""
    root = tmp_path_factory.mktemp("release")
    wan = write_wan_base(root / "Wan2.1-T2V-1.3B-Diffusers")
    tuned_vae = write_tuned_vae(root / "tuned_vae.pth")
    return root, wan, tuned_vae


@pytest.mark.parametrize(
    "dvi, ema, prefix", [(True, True, "module."), (False, False, ""), (True, False, "module."), (False, True, "")]
)
def test_convert_round_trip(release, tmp_path, dvi, ema, prefix):
    root, wan, tuned_vae = release
    expected_state = write_dit_checkpoint(tmp_path / "dit.pth", dvi, ema, prefix)
    out = tmp_path / "model"
    code = main(["convert", "--wan", str(wan), "--dit", str(tmp_path / "dit.pth"), "--vae",
                 str(root / "tuned_vae.pth"), "--out", str(out), "--text-len", "64"])
    assert code == 0
    pipe = load_pipeline(out, device="cpu", dtype="float32")
    assert pipe.dvi == dvi and pipe.config.text_len == 64 and not pipe.config.mask_latent_normalized

    # the same computation built by hand from the same weights
    from transformers import AutoTokenizer, UMT5EncoderModel

    direct_dit = load_checked(build_transformer("tiny", dvi=dvi), dict(expected_state), "expected")
    direct = FlowRVSPipeline(
        transformer=direct_dit,
        vae=tuned_vae,
        text_encoder=UMT5EncoderModel.from_pretrained(wan / "text_encoder"),
        tokenizer=AutoTokenizer.from_pretrained(wan / "tokenizer"),
        text_len=64,
    )
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    a = pipe(frames, ["the red circle", "a dog"], size=(32, 48), return_logits=True)
    b = direct(frames, ["the red circle", "a dog"], size=(32, 48), return_logits=True)
    for x, y in zip(a.logits, b.logits):
        # equal up to float summation order (the EMA offsets alone move logits by >1e-3)
        assert np.allclose(x, y, rtol=0, atol=1e-5)


def test_convert_flags(release, tmp_path):
    root, wan, _ = release
    write_dit_checkpoint(tmp_path / "dit.pth", True, False, "")
    assert main(["convert", "--wan", str(wan), "--dit", str(tmp_path / "dit.pth"), "--vae", str(root / "tuned_vae.pth"),
                 "--out", str(tmp_path / "m"), "--mask-latent-normalized"]) == 0
    pipe = load_pipeline(tmp_path / "m")
    assert pipe.config.mask_latent_normalized and pipe.config.text_len == 256


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_pickled_code(release, tmp_path, capsys):
    root, wan, _ = release
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": Payload()}, f)
    code = main(["convert", "--wan", str(wan), "--dit", str(tmp_path / "evil.pth"), "--vae",
                 str(root / "tuned_vae.pth"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr()
    assert code == 2 and "this must never run" not in err.out
    assert "refuses to unpickle" in err.err and len(err.err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_wrong_shape_names_the_tensor(release, tmp_path, capsys):
    root, wan, _ = release
    model = build_transformer("tiny", dvi=True)
    state = model.state_dict()
    state["blocks.1.ffn.net.2.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "dit.pth")
    code = main(["convert", "--wan", str(wan), "--dit", str(tmp_path / "dit.pth"), "--vae",
                 str(root / "tuned_vae.pth"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "blocks.1.ffn.net.2.weight" in err and "(3, 3)" in err


def test_missing_parts_and_bad_vae(release, tmp_path, capsys):
    root, wan, _ = release
    write_dit_checkpoint(tmp_path / "dit.pth", True, False, "")
    code = main(["convert", "--wan", str(tmp_path), "--dit", str(tmp_path / "dit.pth"), "--vae",
                 str(root / "tuned_vae.pth"), "--out", str(tmp_path / "m")])
    assert code == 2 and "missing transformer/" in capsys.readouterr().err
    from diffusers import AutoencoderKLWan

    from flowrvs.presets import preset_config

    three = AutoencoderKLWan.from_config(preset_config("tiny", "vae"))
    torch.save({"model": {f"vae.{k}": v for k, v in three.state_dict().items()}}, tmp_path / "vae3.pth")
    code = main(["convert", "--wan", str(wan), "--dit", str(tmp_path / "dit.pth"), "--vae",
                 str(tmp_path / "vae3.pth"), "--out", str(tmp_path / "m")])
    assert code == 2 and "1 output channel" in capsys.readouterr().err
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    code = main(["convert", "--wan", str(wan), "--dit", str(tmp_path / "corrupt.pth"), "--vae",
                 str(root / "tuned_vae.pth"), "--out", str(tmp_path / "m")])
    assert code == 2 and "cannot be loaded" in capsys.readouterr().err
