"""Writing a split to disk in the MeViS layout:
``<out_dir>/<split>/{JPEGImages/<video>/<frame>.jpg, meta_expressions.json, mask_dict.json}``,
replaced atomically; other splits of ``out_dir`` are left alone."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
from PIL import Image
from tqdm import tqdm

from flowrvs.data.synth.generate import (
    DEFAULT_FRAMES, DEFAULT_SIZE, check_frames, generate_video, parse_mix, parse_size, video_rng,
)
from flowrvs.data.synth.video import SynthVideo
from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_dir

DEFAULT_VIDEOS = 100
DEFAULT_SEED = 0
DEFAULT_SPLIT = "train"
JPEG_QUALITY = 95


def _check_split_name(split: str) -> str:
    if not isinstance(split, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", split):
        raise FlowRVSError(f"split name must be a plain folder name (letters, digits, _ . -), got {split!r}")
    return split


def _named_videos(
    videos: int | Iterable[SynthVideo], frames: int, size: tuple[int, int] | str, seed: int,
    mix: Mapping[str, float] | str | None,
) -> tuple[int, Iterator[tuple[str, SynthVideo]]]:
    """How many videos a split holds and an iterator of ``(video id, video)``, generated lazily
    from a count or taken from given videos; the arguments are checked before anything is made."""
    if isinstance(videos, (int, np.integer)) and not isinstance(videos, bool):
        if videos < 1:
            raise FlowRVSError(f"videos must be at least 1, got {videos}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise FlowRVSError(f"seed must be a non-negative integer, got {seed!r}")
        frames = check_frames(frames)
        size = parse_size(size)
        mix = parse_mix(mix)
        count = int(videos)
        generated = (
            (f"synth_{seed}_{i:04d}", generate_video(video_rng(seed, i), frames, size, mix=mix)) for i in range(count)
        )
        return count, generated
    given = list(videos)
    if not given:
        raise FlowRVSError("no videos to write")
    return len(given), ((v.name or f"synth_{i:04d}", v) for i, v in enumerate(given))


def write_video_frames(folder: Path, video: SynthVideo, quality: int) -> list[str]:
    """Write the frames of ``video`` as ``folder/<frame>.jpg`` and return the frame names."""
    folder.mkdir(parents=True)
    names = [f"{t:05d}" for t in range(video.num_frames)]
    for t, fname in enumerate(names):
        Image.fromarray(video.frames[t]).save(folder / f"{fname}.jpg", format="JPEG", quality=quality, subsampling=0)
    return names


def write_split(
    out_dir: str | Path,
    split: str = DEFAULT_SPLIT,
    videos: int | Iterable[SynthVideo] = DEFAULT_VIDEOS,
    frames: int = DEFAULT_FRAMES,
    size: tuple[int, int] | str = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    mix: Mapping[str, float] | str | None = None,
    progress: bool | None = None,
    quality: int = JPEG_QUALITY,
) -> Path:
    """Write a split in the MeViS layout under ``out_dir/split`` (atomically) and return that folder.

    ``videos`` is a count (then video ``i`` is ``generate_video(video_rng(seed, i), frames, size)``
    with id ``synth_<seed>_<i:04d>``) or already generated :class:`SynthVideo` objects (ids from
    their ``name``, else ``synth_<i:04d>``). ``progress=None`` shows a bar only on a terminal.
    """
    from flowrvs.io.masks import encode_rle  # pycocotools: not imported while `flowrvs --help` builds its parser

    split = _check_split_name(split)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FlowRVSError(f"output {out_dir} exists and is not a folder")
    count, source = _named_videos(videos, frames, size, seed, mix)
    meta: dict[str, dict] = {}
    mask_dict: dict[str, list] = {}
    next_anno = 0
    with atomic_dir(out_dir / split) as tmp:
        disable = None if progress is None else not progress
        for vid, video in tqdm(source, total=count, desc=f"synth {split}", unit="video", disable=disable):
            if vid in meta:
                raise FlowRVSError(f"duplicate video id {vid!r}")
            names = write_video_frames(tmp / "JPEGImages" / vid, video, quality)
            annos = list(range(next_anno, next_anno + len(video.masks)))
            next_anno += len(video.masks)
            for a, obj_masks in zip(annos, video.masks):
                mask_dict[str(a)] = [encode_rle(m) if m.any() else None for m in obj_masks]
            exps = {}
            for k, (sentence, ids) in enumerate(video.expressions):
                exps[str(k)] = {"exp": sentence, "obj_id": [int(i) for i in ids], "anno_id": [annos[i] for i in ids]}
            meta[vid] = {"frames": names, "expressions": exps}
        (tmp / "meta_expressions.json").write_text(json.dumps({"videos": meta}, sort_keys=True))
        (tmp / "mask_dict.json").write_text(json.dumps(mask_dict, sort_keys=True))
    return out_dir / split
