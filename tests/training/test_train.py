"""The trainer: config parsing, the three stages, checkpoints, exact resume, NaN stop, CLI."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open

from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.data.synth.writer import write_split
from flowrvs.training.config import TrainConfig, config_from_dict, load_config
from flowrvs.training.checkpoint import list_checkpoints
from flowrvs.training.trainer import train

from helpers.clips import one_clip

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "tiny-synthetic.yaml"
T, H, W = 5, 32, 48


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """A 3-video synthetic MeViS split, 5 frames of 32x48."""
    root = tmp_path_factory.mktemp("synth")
    write_split(root, "train", videos=3, frames=T, size=(H, W), seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def single_root(tmp_path_factory):
    """A split with one video and one expression: every step sees the same clip."""
    root = tmp_path_factory.mktemp("single")
    one_clip(root)
    return root


def make_config(out, root, stage="flow", overrides=()) -> TrainConfig:
    raw = {
        "output_dir": str(out),
        "stage": stage,
        "device": "cpu",
        "seed": 0,
        "progress": False,
        "checkpoint_every": 1000,
        "log_every": 1,
        "model": {"preset": "tiny", "vocabulary": "synth", "text_len": 16},
        "data": {
            "datasets": [{"type": "mevis", "root": str(root), "split": "train"}],
            "num_frames": T,
            "size": [H, W],
            "sampling": "local",
        },
        "optim": {"steps": 2, "lr": 1e-3},
    }
    return config_from_dict(raw, list(overrides))


# --------------------------------------------------------------------------- config
def test_config_file_names_every_knob_and_overrides_apply():
    config = load_config(
        TINY_CONFIG,
        ["optim.steps=200", "flow.bbs_p=0.25", "data.size=[64,112]", "optim.lr=1e-3", "data.datasets.0.weight=2",
         "model.init=null", "ema.use_at_save=false"],
    )
    assert config.optim.steps == 200 and isinstance(config.optim.steps, int)
    assert config.flow.bbs_p == 0.25
    assert config.data.size == (64, 112)
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)  # "1e-3" is a string to YAML 1.1
    assert config.data.datasets[0].weight == 2.0 and config.data.datasets[0].type == "mevis"
    assert config.model.init is None and config.ema.use_at_save is False
    assert (config.data.num_frames, config.model.vocabulary, config.model.text_len) == (9, "synth", 32)

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
        return out

    written = yaml.safe_load(TINY_CONFIG.read_text())
    assert keys(written) == keys(TrainConfig().to_dict())  # every knob named in the committed config
    assert set(written["data"]["datasets"][0]) >= {"type", "root", "split", "weight"}


def test_defaults_follow_the_paper():
    c = TrainConfig()
    assert (c.optim.lr, c.optim.weight_decay, c.optim.grad_clip, c.optim.batch_size) == (5e-5, 5e-4, 1.0, 1)
    assert (c.ema.decay, c.flow.bbs_p, c.flow.spa_strength, c.data.num_frames) == (0.9999, 0.5, 1.0, 17)


@pytest.mark.parametrize(
    "override, named",
    [
        ("optim.lrr=1", "optim.lrr"),
        ("bogus=1", "bogus"),
        ("model.nope.deeper=1", "model.nope"),
        ("optim.steps=abc", "optim.steps"),
        ("stage=pretrain", "stage"),
        ("flow.bbs_p=1.5", "flow.bbs_p"),
        ("data.size=[64]", "data.size"),
        ("data.datasets.3.root=x", "data.datasets"),
        ("optim.decay_start=5000000", "optim.decay_start"),
        ("data.sentences_per_video=0", "data.sentences_per_video"),
        ("data.sentences_per_video=3", "data.sentences_per_video"),  # batch 8 is not a multiple
    ],
)
def test_bad_keys_and_values_are_named(override, named):
    with pytest.raises(FlowRVSError, match=re.escape(named)):
        load_config(TINY_CONFIG, [override])


def test_unknown_key_in_file(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  steps: 3\n  learning_rate: 0.1\n")
    with pytest.raises(FlowRVSError, match="optim.learning_rate"):
        load_config(path)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "optim.learning_rate" in err


# --------------------------------------------------------------------------- training
def test_flow_stage_lowers_loss(tmp_path, single_root):
    config = make_config(
        tmp_path / "run", single_root, "flow", ["optim.steps=30", "optim.lr=3e-3", "flow.spa_strength=0", "ema.enabled=false"]
    )
    losses = list(train(config).losses.values())
    assert len(losses) == 30 and all(np.isfinite(losses))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.2 * first, (first, last)  # about 30x on seeds 0-3


def _read(path):
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


def test_resume_is_exact(tmp_path, synth_root):
    overrides = ["optim.steps=6", "checkpoint_every=3", "keep_last=0", "ema.decay=0.9", "optim.warmup_steps=2",
                 "optim.schedule=cosine", "data.hflip_p=0.5", "data.sampling=mixed"]
    full = train(make_config(tmp_path / "full", synth_root, "flow", overrides)).losses

    class Interrupt(Exception):
        pass

    def stop(step, loss):
        if step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(make_config(tmp_path / "cut", synth_root, "flow", overrides), callback=stop)
    assert [s for s, _ in list_checkpoints(tmp_path / "cut")] == [3]
    with pytest.raises(FlowRVSError, match="resume"):
        train(make_config(tmp_path / "cut", synth_root, "flow", overrides))
    resumed = train(make_config(tmp_path / "cut", synth_root, "flow", overrides + ["resume=true"])).losses
    assert sorted(resumed) == [4, 5, 6]
    assert len(set(full.values())) == 6  # the steps really differ (data, times, SPA noise)
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(full[step], abs=1e-6, rel=0)
    # stop_at ends a run early on the same lr schedule; resumed without it, the run goes on exactly
    part = train(make_config(tmp_path / "part", synth_root, "flow", overrides + ["stop_at=4"]))
    assert part.step == 4 and sorted(part.losses) == [1, 2, 3, 4] and (part.model_dir / "model_index.json").is_file()
    assert [s for s, _ in list_checkpoints(tmp_path / "part")] == [3, 4]
    for step in (1, 2, 3, 4):
        assert part.losses[step] == pytest.approx(full[step], abs=1e-6, rel=0)
    with pytest.raises(FlowRVSError, match="past stop_at=3"):
        train(make_config(tmp_path / "part", synth_root, "flow", overrides + ["stop_at=3", "resume=true"]))
    rest = train(make_config(tmp_path / "part", synth_root, "flow", overrides + ["resume=true"])).losses
    assert rest[5] == pytest.approx(full[5], abs=1e-6, rel=0) and rest[6] == pytest.approx(full[6], abs=1e-6, rel=0)
    a, _ = _read(tmp_path / "full" / "checkpoints" / "step-00000006.safetensors")
    b, _ = _read(tmp_path / "cut" / "checkpoints" / "step-00000006.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        if not key.startswith("rng."):
            assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key


def test_checkpoint_files(tmp_path, synth_root):
    out = tmp_path / "run"
    train(make_config(out, synth_root, "flow", ["optim.steps=4", "checkpoint_every=1", "keep_last=2"]))
    assert [s for s, _ in list_checkpoints(out)] == [3, 4]
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-00000003.safetensors", "step-00000004.safetensors"]
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []
    tensors, meta = _read(out / "checkpoints" / "step-00000004.safetensors")
    assert meta["format"] == "flowrvs-train-checkpoint/1" and meta["step"] == "4" and meta["stage"] == "flow"
    assert tensors["rng.torch_cpu"].dtype == torch.uint8
    opt = json.loads(meta["optimizer"])
    assert opt["param_groups"][0]["weight_decay"] == 5e-4
    assert all(v["step"] == 4.0 for v in opt["state"].values())
    assert json.loads(meta["rng.numpy"])[0] == "MT19937" and len(json.loads(meta["rng.python"])[1]) == 625
    model = {k[6:] for k in tensors if k.startswith("model.")}
    assert model and model == {k[4:] for k in tensors if k.startswith("ema.")}
    assert {k for k in tensors if k.startswith("optim.")} == {f"optim.{n}.{s}" for n in model for s in ("exp_avg", "exp_avg_sq")}
    assert "patch_embedding.weight" in model  # the DiT trains in the flow stage
    log = (out / "train.log").read_text().splitlines()
    steps = [line for line in log if line.startswith("step=")]
    assert len(steps) == 4 and re.fullmatch(r"step=4 loss=\S+ lr=\S+ seconds=\S+", steps[-1])
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["steps"] == 4


def test_nan_loss_stops_with_exit_2(tmp_path, synth_root, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(make_config(tmp_path / "run", synth_root).to_dict()))
    assert main(["train", str(path), "optim.lr=1e30", "optim.grad_clip=0", "optim.steps=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(r"loss is (nan|inf|-inf) at step \d; lower optim.lr", err), err


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _changed(before, after, prefix=""):
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def test_stages_chain_into_loadable_models(tmp_path, synth_root):
    load = lambda folder: load_pipeline(folder, device="cpu", dtype="float32")
    ae = train(make_config(tmp_path / "ae", synth_root, "autoencoder"))
    ae_pipe = load(ae.model_dir)
    assert ae_pipe.vae.config.out_channels == 1 and ae_pipe.dvi
    assert ae_pipe.config.size == (H, W) and ae_pipe.config.text_len == 16
    assert (tmp_path / "ae" / "model" / "vae").is_dir()

    dec = train(make_config(tmp_path / "dec", synth_root, "mask_decoder", [f"model.init={ae.model_dir}"]))
    dec_pipe = load(dec.model_dir)
    before, after = _state(ae_pipe.vae), _state(dec_pipe.vae)
    assert _changed(before, after, "decoder.") and not _changed(before, after, "encoder.")
    assert not _changed(before, after, "quant_conv.")
    assert not _changed(_state(ae_pipe.transformer), _state(dec_pipe.transformer))

    flow = train(make_config(tmp_path / "flow", synth_root, "flow", [f"model.init={dec.model_dir}"]))
    flow_pipe = load(flow.model_dir)
    assert not _changed(after, _state(flow_pipe.vae))
    assert _changed(_state(dec_pipe.transformer), _state(flow_pipe.transformer))
    result = flow_pipe(np.zeros((T, H, W, 3), np.uint8), ["the red circle"])
    assert result.masks[0].shape == (T, H, W)


def test_autoencoder_stage_is_tiny_only(tmp_path, synth_root):
    with pytest.raises(FlowRVSError, match="small random models only"):
        make_config(tmp_path / "x", synth_root, "autoencoder", ["model.preset=wan2.1-1.3b"])


def test_cli_runs_the_committed_config(tmp_path, synth_root, capsys):
    out = tmp_path / "cli"
    args = ["train", str(TINY_CONFIG), "optim.steps=2", f"output_dir={out}", f"data.datasets.0.root={synth_root}",
            f"data.size=[{H},{W}]", f"data.num_frames={T}", "device=cpu", "progress=false"]
    assert main(args) == 0
    assert "model written to" in capsys.readouterr().out
    assert load_pipeline(out / "model", device="cpu").config.size == (H, W)
    assert main(args + ["--resume"]) == 0  # already at the last step: rewrites the model only


def test_init_from_a_wan_style_folder(tmp_path, synth_root):
    """A folder with an RGB VAE and a 16-channel DiT (the Wan 2.1 layout) is made a FlowRVS model:
    mask VAE whose head is the mean of the RGB head, DiT widened for DVI."""
    from flowrvs.models.vae import decode_mask_logits
    from flowrvs.presets import build_pipeline
    from flowrvs.data.synth.vocabulary import VOCABULARY
    from flowrvs.models.vae import decode_raw
    from flowrvs.training.stages import to_rgb_vae

    wan = build_pipeline("tiny", dvi=False, seed=1, words=["<pad>", "</s>", "<unk>"] + VOCABULARY)
    wan.vae = to_rgb_vae(wan.vae, seed=1)
    wan.save_pretrained(tmp_path / "wan")
    run = train(make_config(tmp_path / "run", synth_root, "mask_decoder", [f"model.init={tmp_path / 'wan'}", "optim.steps=1"]))
    pipe = load_pipeline(run.model_dir, device="cpu")
    assert pipe.dvi and pipe.vae.config.out_channels == 1

    from flowrvs.training.stages import to_mask_vae

    mask_vae = to_mask_vae(wan.vae)
    z = torch.randn(1, 16, 2, 4, 6)
    with torch.no_grad():
        assert torch.allclose(decode_mask_logits(mask_vae, z), decode_raw(wan.vae, z).mean(1), atol=1e-5)


# --------------------------------------------------------------------------- fast paths
def test_cached_latents_train_resume_and_are_reused(tmp_path, synth_root, single_root):
    from flowrvs.data.mevis import MeViSDataset
    from flowrvs.training.latent_cache import LatentCache

    overrides = ["optim.steps=6", "checkpoint_every=3", "keep_last=0", "data.cache_latents=true",
                 f"data.cache_dir={tmp_path / 'cache'}", "optim.batch_size=2", "data.cache_dtype=float32"]
    full = train(make_config(tmp_path / "full", synth_root, "flow", overrides)).losses
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1
    cache = LatentCache.load(files[0])
    dataset = MeViSDataset(synth_root, "train")
    expressions = dataset.all_expressions()
    assert len(cache) == len(expressions)
    assert cache.sentence == [e.sentence for e in expressions]
    assert cache.mask[0].shape == (16, 2, H // 8, W // 8) and torch.all(cache.video_std[0] > 0)
    # the clips, encoded together, equal each clip encoded alone (a clip is the whole video)
    from flowrvs.io.frames import frames_to_tensor, masks_to_tensor
    from flowrvs.models.vae import encode_mask, encode_video
    from flowrvs.training.stages import load_model

    vae = load_model(make_config(tmp_path / "x", synth_root).model, 0, torch.device("cpu"), torch.float32).vae
    for v, video in enumerate(dataset.videos()):
        alone = encode_video(vae, frames_to_tensor(dataset.load_frames(video, range(T)), (H, W)))
        assert torch.allclose(cache.video_mean[v], alone[0], atol=1e-5), v
    objects = [tuple(sorted(e.anno_ids)) for e in expressions]
    for i, expression in enumerate(expressions):
        alone = encode_mask(vae, masks_to_tensor(dataset.load_mask(expression, range(T)), (H, W)))
        assert torch.allclose(cache.mask[cache.mask_index[i]], alone[0], atol=1e-5), i
    # expressions of one video that name the same objects share one mask latent
    pairs = [(i, j) for i in range(len(expressions)) for j in range(i)
             if cache.video[i] == cache.video[j] and objects[i] == objects[j]]
    assert pairs and all(cache.mask_index[i] == cache.mask_index[j] for i, j in pairs)
    assert len(cache.mask) <= len({(cache.video[i], objects[i]) for i in range(len(expressions))})
    # a second run reuses the file; an interrupted one resumes exactly
    mtime = files[0].stat().st_mtime_ns

    def stop(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(make_config(tmp_path / "cut", synth_root, "flow", overrides), callback=stop)
    resumed = train(make_config(tmp_path / "cut", synth_root, "flow", overrides + ["resume=true"])).losses
    assert files[0].stat().st_mtime_ns == mtime
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(full[step], abs=1e-6, rel=0)
    # adding a dataset (and reweighting the first) encodes only the new one
    from flowrvs.training.config import DatasetConfig

    two = make_config(tmp_path / "two", synth_root, "flow", overrides + ["optim.steps=1", "data.datasets.0.weight=2"])
    two.data.datasets.append(DatasetConfig(type="mevis", root=str(single_root), split="train"))
    train(two)
    assert files[0].stat().st_mtime_ns == mtime
    added = [f for f in (tmp_path / "cache").iterdir() if f != files[0]]
    assert len(added) == 1
    single = MeViSDataset(single_root, "train")
    assert LatentCache.load(added[0]).sentence == [e.sentence for e in single.all_expressions()]


def fake_cache(videos: int, per_video: int, tag: str = ""):
    """A latent cache of ``videos`` videos with ``per_video`` expressions each (tiny constant latents)."""
    from flowrvs.training.latent_cache import LatentCache

    c = LatentCache()
    for v in range(videos):
        c.video_mean.append(torch.full((16, 1, 2, 2), float(v)))
        c.video_std.append(torch.ones(16, 1, 2, 2))
        for e in range(per_video):
            c.mask_index.append(len(c.mask))
            c.mask.append(torch.full((16, 1, 2, 2), float(e)))
            c.sentence.append(f"{tag}{v}.{e}")
            c.video.append(v)
            c.group.append(0)
    return c


def test_latent_caches_concatenate_with_their_groups():
    from flowrvs.training.latent_cache import LatentCache

    cache = fake_cache
    both = LatentCache.concat([cache(2, 1, "a"), cache(3, 2, "b")])
    assert len(both) == 2 + 6 and len(both.video_mean) == 5
    assert both.group == [0, 0] + [1] * 6
    assert both.video == [0, 1, 2, 2, 3, 3, 4, 4]
    batch = both.batch([7])  # the second dataset's last video, index 2 within it
    assert batch["prompts"] == ["b2.1"] and torch.all(batch["z_video_mean"] == 2.0)
    assert both.mask_index == list(range(8)) and torch.all(batch["z_mask"] == 1.0)


def test_batches_of_several_sentences_per_video(tmp_path, synth_root, monkeypatch):
    from flowrvs.training.latent_cache import LatentCache

    cache = LatentCache.concat([fake_cache(1, 1, "a"), fake_cache(3, 5, "b")])
    rng = np.random.default_rng(0)
    for index in range(len(cache)):
        mates = cache.with_video_mates(index, 4, rng)
        assert mates[0] == index and len(mates) == 4
        assert {cache.video[i] for i in mates} == {cache.video[index]}
        if index > 0:  # five expressions in the video: the other three are distinct and not the anchor
            assert len(set(mates)) == 4
    assert cache.with_video_mates(0, 3, rng) == [0, 0, 0]  # a video with one sentence repeats it
    # the flow stage serves batch_size / k videos with k sentences each; it trains and resumes exactly
    base = ["optim.steps=4", "checkpoint_every=2", "keep_last=0", "data.cache_latents=true", "optim.batch_size=4",
            "data.sentences_per_video=2", f"data.cache_dir={tmp_path / 'cache'}"]
    full = train(make_config(tmp_path / "full", synth_root, "flow", base)).losses
    assert sorted(full) == [1, 2, 3, 4] and all(np.isfinite(list(full.values())))
    train(make_config(tmp_path / "cut", synth_root, "flow", base + ["stop_at=2"]))
    seen = []
    original = LatentCache.batch

    def spy(self, indices):
        seen.append([(self.video[i], i) for i in indices])
        return original(self, indices)

    monkeypatch.setattr(LatentCache, "batch", spy)
    resumed = train(make_config(tmp_path / "cut", synth_root, "flow", base + ["resume=true"])).losses
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert resumed[step] == pytest.approx(full[step], abs=1e-6, rel=0)
    pairs = [(b[j], b[j + 1]) for b in seen for j in (0, 2)]
    assert len(pairs) == 4 and all(a[0] == b[0] and a[1] != b[1] for a, b in pairs)  # one video, two sentences
    with pytest.raises(FlowRVSError, match="needs data.cache_latents=true"):
        make_config(tmp_path / "x", synth_root, "flow", ["data.sentences_per_video=2", "optim.batch_size=4"])


def test_latent_cache_precision_and_untrusted_files_of_older_versions(tmp_path, synth_root):
    from safetensors.torch import save_file

    from flowrvs.training.latent_cache import LatentCache, StaleCacheError

    base = ["optim.steps=1", "data.cache_latents=true", f"data.cache_dir={tmp_path / 'cache'}"]
    # the default keeps latents in bfloat16, on disk too
    train(make_config(tmp_path / "bf16", synth_root, "flow", base))
    (bf16,) = (tmp_path / "cache").iterdir()
    assert bf16.name.endswith("-bfloat16.safetensors")
    half = LatentCache.load(bf16)
    assert half.mask[0].dtype == torch.bfloat16 and half.video_mean[0].dtype == torch.bfloat16
    # a float32 cache of the same data is written under the old name and serves a bfloat16 run
    train(make_config(tmp_path / "f32", synth_root, "flow", base + ["data.cache_dtype=float32"]))
    (f32,) = [f for f in (tmp_path / "cache").iterdir() if f != bf16]
    assert f32.name == bf16.name.replace("-bfloat16", "")
    full = LatentCache.load(f32)
    assert full.sentence == half.sentence and full.mask_index == half.mask_index
    assert torch.equal(full.mask[0].bfloat16(), half.mask[0])
    bf16.unlink()
    train(make_config(tmp_path / "again", synth_root, "flow", base))
    assert sorted((tmp_path / "cache").iterdir()) == [f32]
    # a file of an older version (one mask latent per expression, no digest) is not trusted: a
    # run rebuilds it rather than reading what it cannot check
    old = {f"video.{v}.{k}": getattr(full, f"video_{k}")[v] for v in range(len(full.video_mean)) for k in ("mean", "std")}
    old.update({f"mask.{i}": full.mask[m].clone() for i, m in enumerate(full.mask_index)})
    meta = {key: json.dumps(getattr(full, key)) for key in ("sentence", "video", "group")}
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    with pytest.raises(StaleCacheError, match="does not match its digest"):
        LatentCache.load(tmp_path / "old.safetensors", torch.bfloat16)
    # bytes flipped inside a cache file: the next run rebuilds and rewrites it
    raw = bytearray(f32.read_bytes())
    raw[-3] ^= 0x55
    f32.write_bytes(bytes(raw))
    train(make_config(tmp_path / "rebuilt", synth_root, "flow", base + ["data.cache_dtype=float32"]))
    assert torch.equal(LatentCache.load(f32).mask[-1], full.mask[-1])


def test_learning_rate_schedules():
    from flowrvs.training.config import OptimConfig
    from flowrvs.training.trainer import lr_at

    constant = OptimConfig(steps=100, lr=1.0, warmup_steps=10)
    assert [lr_at(constant, s) for s in (1, 5, 10, 11, 100)] == pytest.approx([0.1, 0.5, 1.0, 1.0, 1.0])
    cosine = OptimConfig(steps=110, lr=1.0, warmup_steps=10, schedule="cosine")
    assert [lr_at(cosine, s) for s in (10, 60, 110)] == pytest.approx([1.0, 0.5, 0.0])
    # decay_start: constant until then, then a cosine to zero at the last step
    late = OptimConfig(steps=110, lr=1.0, warmup_steps=10, schedule="cosine", decay_start=90)
    assert [lr_at(late, s) for s in (50, 90, 100, 110)] == pytest.approx([1.0, 1.0, 0.5, 0.0])


def test_crops_and_measured_latent_stats(tmp_path, synth_root):
    import torch as _torch

    from flowrvs.training.data import random_crop

    batch = {"video": _torch.randn(1, 3, 5, 32, 48), "mask": _torch.rand(1, 5, 32, 48)}
    out = random_crop(batch, (16, 24), _torch.Generator().manual_seed(0))
    assert out["video"].shape[-2:] == (16, 24) and out["mask"].shape[-2:] == (16, 24)
    # the crop is the same window of video and mask, aligned to the VAE's 8-pixel grid
    found = [(i, j) for i in range(0, 17, 8) for j in range(0, 25, 8)
             if _torch.equal(batch["mask"][..., i:i + 16, j:j + 24], out["mask"])]
    assert len(found) == 1
    i, j = found[0]
    assert _torch.equal(batch["video"][..., i:i + 16, j:j + 24], out["video"])

    ae = train(make_config(tmp_path / "ae", synth_root, "autoencoder", ["data.crop=[16,24]", "optim.steps=3"]))
    vae = load_pipeline(ae.model_dir).vae
    from flowrvs.presets import preset_config

    assert vae.config.latents_mean != preset_config("tiny", "vae")["latents_mean"]
    assert all(s > 0 for s in vae.config.latents_std) and len(vae.config.latents_mean) == 16


def test_flow_stage_can_train_the_text_encoder(tmp_path, synth_root):
    from flowrvs.training.stages import load_model

    start = load_model(make_config(tmp_path / "x", synth_root).model, 0, torch.device("cpu"), torch.float32)
    overrides = ["optim.steps=3", "model.train_text_encoder=true", "ema.enabled=false", "checkpoint_every=3"]
    train(make_config(tmp_path / "run", synth_root, "flow", overrides))
    tensors, _ = _read(tmp_path / "run" / "checkpoints" / "step-00000003.safetensors")
    assert any(k.startswith("model.text_encoder.") for k in tensors)
    assert any(k.startswith("model.transformer.") for k in tensors)
    trained = load_pipeline(tmp_path / "run" / "model", device="cpu", keep_text_encoder=True)
    before, after = start.text_encoder.state_dict(), trained.text_encoder.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "shared.weight" in changed or "encoder.embed_tokens.weight" in changed, changed
    # the exported model encodes prompts with its trained weights
    prompt = ["the red circle"]
    assert not torch.allclose(start.encode_prompt(prompt), trained.encode_prompt(prompt))


def test_export_writes_the_model_the_run_wrote(tmp_path, synth_root, capsys):
    run = tmp_path / "run"
    overrides = ["optim.steps=3", "checkpoint_every=2", "keep_last=0", "ema.decay=0.5", "model.train_text_encoder=true"]
    train(make_config(run, synth_root, "flow", overrides))
    assert main(["export", str(run), "--out", str(tmp_path / "last")]) == 0
    assert "step-00000003" in capsys.readouterr().out
    wrote, exported = (load_pipeline(p, device="cpu", keep_text_encoder=True)
                       for p in (run / "model", tmp_path / "last"))
    for part in ("transformer", "text_encoder", "vae"):
        a, b = getattr(wrote, part).state_dict(), getattr(exported, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    # an earlier step, raw weights: those of the checkpoint, not the EMA
    assert main(["export", str(run), "--step", "2", "--no-ema", "--out", str(tmp_path / "raw2")]) == 0
    tensors, _ = _read(run / "checkpoints" / "step-00000002.safetensors")
    raw = load_pipeline(tmp_path / "raw2", device="cpu").transformer.state_dict()
    key = "patch_embedding.weight"
    assert torch.equal(raw[key], tensors[f"model.transformer.{key}"])
    assert not torch.equal(raw[key], tensors[f"ema.transformer.{key}"])
    capsys.readouterr()
    assert main(["export", str(run), "--step", "1", "--out", str(tmp_path / "x")]) == 2
    assert "no checkpoint of step 1" in capsys.readouterr().err
    assert main(["export", str(run / "config.yaml"), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
