"""Tiny fake FlowRVS releases in the public formats, and a Hugging Face cache laid out as
huggingface_hub lays one out (``models--owner--name/{blobs,snapshots/<commit>,refs/main}``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from flowrvs.loading.convert import apply_ema
from flowrvs.models.dit import add_video_injection
from flowrvs.presets import build_text_encoder, build_transformer, build_vae, build_word_tokenizer, preset_config, preset_vocabulary


def write_wan_base(folder: Path) -> Path:
    """A tiny ``Wan2.1-T2V-1.3B-Diffusers``-like folder: a 3-channel VAE, umT5, tokenizer, the stock
    DiT, and the release's own ``model_index.json`` (a ``WanPipeline``)."""
    import shutil

    from diffusers import AutoencoderKLWan

    from flowrvs.presets import preset_dir

    torch.manual_seed(0)
    build_transformer("tiny", dvi=False).save_pretrained(folder / "transformer")
    AutoencoderKLWan.from_config(preset_config("tiny", "vae")).save_pretrained(folder / "vae")
    tokenizer = build_word_tokenizer(preset_vocabulary("tiny"))
    build_text_encoder("tiny", vocab_size=len(tokenizer)).save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(preset_dir("wan2.1-1.3b") / "model_index.json", folder / "model_index.json")
    return folder


def write_tuned_vae(path: Path, seed: int = 2):
    """``tuned_vae.pth``: ``{"model": {"vae.<name>": tensor}}`` with a 1-channel decoder head."""
    torch.manual_seed(seed)
    vae = build_vae("tiny")
    torch.save({"model": {f"vae.{k}": v for k, v in vae.state_dict().items()}}, path)
    return vae


def write_dit_checkpoint(path: Path, dvi: bool, ema: bool, prefix: str = "", seed: int = 1) -> dict:
    """A DiT checkpoint as the public code saves it; returns the state dict it stands for
    (EMA weights applied when present)."""
    torch.manual_seed(seed)
    model = build_transformer("tiny", dvi=False)
    if dvi:
        model = add_video_injection(model)
        with torch.no_grad():
            model.patch_embedding.weight[:, 16:].normal_(std=0.1)  # "trained" video channels
    state = {prefix + k: v for k, v in model.state_dict().items()}
    if ema:
        shadow = [p.detach() + 0.01 * torch.randn_like(p) for p in model.parameters()]
        obj = {"model": state, "ema_model": {"decay": 0.9999, "optimization_step": 10, "shadow_params": shadow}}
    else:
        obj = state if prefix == "" else {"model": state}
    torch.save(obj, path)
    return apply_ema(model, model.state_dict(), shadow) if ema else model.state_dict()


def put_in_hub_cache(cache: Path, repo: str, files: dict[str, Path], commit: str | None = None) -> Path:
    """Store ``files`` (repo path -> local file or folder) in ``cache`` as a snapshot of ``repo``;
    returns the snapshot folder. Blobs are named by content hash, snapshot entries are relative
    links to them, ``refs/main`` names the commit."""
    root = Path(cache) / f"models--{repo.replace('/', '--')}"
    commit = commit or hashlib.sha1(repo.encode()).hexdigest()
    snapshot = root / "snapshots" / commit
    items: list[tuple[str, Path]] = []
    for rel, src in files.items():
        src = Path(src)
        if src.is_dir():
            items += [(f"{rel}/{p.relative_to(src).as_posix()}", p) for p in sorted(src.rglob("*")) if p.is_file()]
        else:
            items.append((rel, src))
    for rel, src in items:
        data = src.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


def write_rem_checkpoint(path: Path, base: Path, seed: int = 3, drop: tuple[str, ...] = (), args=None,
                         extra: dict | None = None) -> dict:
    """A REM checkpoint as its training script saves one: ``{"model_state": {"backbone.dit.*",
    "backbone.vae.*"}, "optimizer", "epoch", "iteration", "args": argparse.Namespace}``, over the
    tiny Wan ``base`` (:func:`write_wan_base`). The DiT is the base's, perturbed; of the VAE only
    the decoder's last conv, scaled up so that decoded mask pictures span [-1, 1] (a test with
    all-empty masks could not fail). ``drop``: DiT keys left out (the base fills them).
    Returns ``{"dit": state, "vae": state}``, the weights the converted model must hold."""
    import argparse

    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    torch.manual_seed(seed)
    dit = WanTransformer3DModel.from_pretrained(str(base / "transformer")).state_dict()
    dit = {k: v + 0.02 * torch.randn_like(v) for k, v in dit.items()}
    vae = AutoencoderKLWan.from_pretrained(str(base / "vae")).state_dict()
    head = {"decoder.conv_out.weight": vae["decoder.conv_out.weight"] * 4,
            "decoder.conv_out.bias": torch.full_like(vae["decoder.conv_out.bias"], 1.0)}
    state = {**{f"backbone.dit.{k}": v for k, v in dit.items() if k not in drop},
             **{f"backbone.vae.{k}": v for k, v in head.items()}, **(extra or {})}
    optimizer = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(4)}},
                 "param_groups": [{"lr": 1e-5, "betas": (0.9, 0.999), "params": [0]}]}
    args = args if args is not None else argparse.Namespace(token_length=77, lr=1e-5, num_frames=17, output_dir="runs/rem")
    torch.save({"model_state": state, "optimizer": optimizer, "epoch": 2, "iteration": 1000, "args": args}, path)
    for k in drop:
        dit[k] = WanTransformer3DModel.from_pretrained(str(base / "transformer")).state_dict()[k]
    return {"dit": dit, "vae": {**vae, **head}}
