"""Fuzz every reader a user reaches with mutated and generated inputs (issue 24, point 4).

Each reader below builds one case from what hypothesis draws (a mutated seed file, or a file
generated from scratch), then calls the library in-process, as the command line would:

* ``video``, ``gif``, ``image``: a container (mp4/avi/mkv), a GIF, a PNG/JPEG, truncated,
  with garbled bytes (headers favoured), empty or random; read with ``open_video`` to the end;
* ``frame-folder``: a folder of frames with drawn names, sizes and damaged files;
* ``sentences``: a JSON or CSV sentence file (generated, hostile names, or mutated text) given to
  ``segment_batch`` with the tiny-synthetic model;
* ``batch-resume``: a finished ``segment-batch`` output whose ``masks.json`` or status records
  are mutated, run again;
* ``score``: ``flowrvs score`` (``cli.main``) on a MeViS split whose ``meta_expressions.json``,
  ``mask_dict.json`` (RLE) or prediction PNGs are mutated;
* ``rle``: ``decode_rle`` on mutated COCO RLEs, checked against a reference decoder;
* ``mevis``, ``revos``, ``ytvos``: ``open_dataset`` and every clip of a mutated split (its
  JSONs, RLEs, JPEGs and annotation PNGs);
* ``train-config``: ``load_config`` on a mutated or generated YAML training config;
* ``model-folder``: ``load_pipeline`` on the tiny-synthetic folder with its ``model_index.json``,
  a component config, the tokenizer or a safetensors header mutated;
* ``safetensors``, ``checkpoint``: ``load_weights_file`` on a mutated ``.safetensors`` (header
  regenerated or bytes garbled) or ``.pth``;
* ``embedding-cache``: ``EmbeddingCache.get`` on a mutated cache entry (a miss or the tensor);
* ``latent-cache``: ``LatentCache.load`` on a mutated latent cache (a ``StaleCacheError``, which
  its caller turns into a rebuild, or the cache).

A case passes when it ends, within :data:`CASE_SECONDS`, with a result or a one-line
:class:`FlowRVSError` (``flowrvs score``: exit 0, or exit 2 with one line on stderr) and wrote
nothing outside its output folder. Anything else (another exception, a multi-line message, the
time bound reached, a new file outside ``out/``, a wrong RLE decode) is a finding, grouped by
reader, exception type and the line of flowrvs that raised it.

Usage: ``python benchmarks/fuzz.py --cases N --seed S [--readers a,b] [--save DIR]``; N cases
per reader. Prints the cases run per reader and the findings; ``--save`` keeps the input folder
of the first case of each finding.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import os
import shutil
import signal
import struct
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from flowrvs.errors import FlowRVSError

CASE_SECONDS = 30.0  # generous: a case takes well under a second; only a hang reaches it
REPO = Path(__file__).resolve().parents[1]
Call = Callable[[], object]
Build = Callable[[st.DataObject, Path, Path], Call]


class CaseTimeout(BaseException):
    """The time bound of a case was reached (a BaseException, so no ``except Exception`` eats it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread once ``seconds`` have passed."""

    def expire(signum, frame):
        raise CaseTimeout(f"no end within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Accepted(Exception):
    """Raised by a reader's call for an outcome it accepts although it is not a plain result
    (a cache miss reported as its own exception type)."""


@dataclass
class Finding:
    """One kind of failure: the first message seen and how many cases hit it."""

    reader: str
    signature: str
    message: str
    count: int = 0
    saved: str | None = None


@dataclass
class Tally:
    """What the cases of one reader ended as."""

    cases: int = 0
    results: int = 0
    refused: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)


def raised_at(exc: BaseException) -> str:
    """``file:line`` of the deepest traceback frame inside flowrvs (else the deepest frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "flowrvs" in f.filename and "benchmarks" not in f.filename] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def outcome(call: Call) -> tuple[str, str | None, str | None]:
    """Run ``call`` under the time bound: ``("result" | "refused" | "finding", signature, message)``."""
    try:
        with time_limit(CASE_SECONDS):
            call()
    except CaseTimeout as exc:
        return "finding", f"hang at {raised_at(exc)}", str(exc)
    except FlowRVSError as exc:
        if "\n" in str(exc) or not str(exc).strip():
            return "finding", f"FlowRVSError not one line at {raised_at(exc)}", repr(str(exc))[:300]
        return "refused", None, None
    except Accepted:
        return "refused", None, None
    except Exception as exc:  # noqa: BLE001 - every other exception is what the fuzzer looks for
        return "finding", f"{type(exc).__name__} at {raised_at(exc)}", f"{type(exc).__name__}: {str(exc)[:300]}"
    return "result", None, None


def listing(root: Path, out: Path) -> set[str]:
    """Every path under ``root`` except those under ``out``."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == out or out in here.parents:
            dirnames[:] = []
            continue
        found.update(str((here / n).relative_to(root)) for n in dirnames + filenames)
    return found


# ---- mutations ---------------------------------------------------------------------------------
HOSTILE_NAMES = ["", ".", "..", "../x", "../../escaped", "/tmp/flowrvs-fuzz-abs", "a/b", "a\\b", "a\x00b", "C:x",
                 "x" * 300, "é", " ", "\n", ".hidden", "con", "a.mp4", "00000"]
BIG_INTS = [0, -1, 1, 2, 3, 2**31, 2**63, 10**12, 10**30, -(2**63)]


def json_values(small: bool = False) -> st.SearchStrategy:
    """JSON values, hostile names and edge numbers among them (``small``: ints in [-2, 64])."""
    ints = st.integers(-2, 64) if small else st.one_of(st.integers(-1000, 10**6), st.sampled_from(BIG_INTS))
    leaves = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=8), st.sampled_from(HOSTILE_NAMES))
    keys = st.one_of(st.text(max_size=6), st.sampled_from(HOSTILE_NAMES))
    return st.recursive(leaves, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4),
                        max_leaves=8)


def _positions(data: st.DataObject, n: int) -> int:
    """A position in a blob of ``n`` bytes, the first 512 (headers) as likely as the rest."""
    if n <= 1:
        return 0
    return data.draw(st.one_of(st.integers(0, min(n, 512) - 1), st.integers(0, n - 1)))


def mutate_bytes(data: st.DataObject, blob: bytes) -> bytes:
    """``blob`` truncated, garbled, spliced, emptied or replaced by random bytes (1 to 4 edits)."""
    whole = data.draw(st.sampled_from(["edit"] * 8 + ["empty", "random"]))
    if whole == "empty":
        return b""
    if whole == "random":
        return data.draw(st.binary(max_size=2048))
    out = bytearray(blob)
    for op in data.draw(st.lists(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete", "zero"]),
                                 min_size=1, max_size=4)):
        pos = _positions(data, len(out))
        if op == "truncate":
            del out[pos:]
        elif op == "flip" and out:
            out[pos] ^= data.draw(st.integers(1, 255))
        elif op == "overwrite":
            chunk = data.draw(st.binary(min_size=1, max_size=16))
            out[pos : pos + len(chunk)] = chunk
        elif op == "insert":
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del out[pos : pos + data.draw(st.integers(1, 64))]
        elif op == "zero":
            length = data.draw(st.integers(1, 64))
            out[pos : pos + length] = bytes(len(out[pos : pos + length]))
    return bytes(out)


def _nodes(obj, path=()) -> Iterator[tuple]:
    """Paths (key tuples) of every node of a JSON value, the root included."""
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, path + (i,))


def mutate_value(data: st.DataObject, obj, small: bool = False):
    """A deep copy of a JSON value with 1 to 3 nodes replaced, deleted or renamed (hostile names)."""
    obj = copy.deepcopy(obj)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _nodes(obj) if p]
        if not paths:
            return data.draw(json_values(small))
        path = data.draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "rename"]))
        if op == "replace":
            parent[key] = data.draw(json_values(small))
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(HOSTILE_NAMES) | st.text(max_size=6))] = parent.pop(key)
    return obj


def mutate_json(data: st.DataObject, obj, small: bool = False) -> bytes:
    """A JSON file from ``obj`` mutated as a value, as text, or both."""
    how = data.draw(st.sampled_from(["value", "value", "text", "both"]))
    value = obj if how == "text" else mutate_value(data, obj, small)
    text = json.dumps(value, allow_nan=True).encode()
    return mutate_bytes(data, text) if how != "value" else text


def mutate_file(data: st.DataObject, path: Path, small: bool = False) -> None:
    """Mutate ``path`` in place (a new file: hard links to the seed stay untouched)."""
    blob = path.read_bytes()
    if path.suffix == ".json":
        try:
            new = mutate_json(data, json.loads(blob), small)
        except ValueError:
            new = mutate_bytes(data, blob)
    else:
        new = mutate_bytes(data, blob)
    path.unlink()
    path.write_bytes(new)


# ---- seeds: valid inputs, made once per process -------------------------------------------------
H, W, T = 16, 24, 3


def _frames(n: int = T, h: int = H, w: int = W) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 frames with a moving square, so every frame differs."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        frames[t, 2 : h // 2, t + 2 : t + w // 2] = (200, 40 + 50 * t, 90)
    return frames


def _write_container(path: Path, codec: str) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for frame in _frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@cache
def seeds() -> Path:
    """A folder of valid seed inputs (videos, images, a MeViS split, configs, weights)."""
    from PIL import Image

    root = Path(tempfile.mkdtemp(prefix="flowrvs-fuzz-seeds-"))
    _write_container(root / "clip.mp4", "libx264")
    _write_container(root / "clip.avi", "mpeg4")
    _write_container(root / "clip.mkv", "mpeg4")
    images = [Image.fromarray(f) for f in _frames()]
    images[0].save(root / "clip.gif", save_all=True, append_images=images[1:], duration=125, loop=0)
    images[0].save(root / "frame.png")
    images[0].save(root / "frame.jpg", quality=90)
    _write_mevis(root / "mevis")
    _write_revos(root / "revos")
    _write_ytvos(root / "ytvos")
    _write_weights(root)
    return root


def _write_mevis(root: Path) -> None:
    """A MeViS ``valid_u`` split (2 videos, 3 frames, RLE masks) and predictions for every frame."""
    from PIL import Image

    from flowrvs.io.masks import encode_rle

    split = root / "valid_u"
    meta, masks = {"videos": {}}, {}
    for v, vid in enumerate(["vidA", "vidB"]):
        names = [f"{i:05d}" for i in range(T)]
        folder = split / "JPEGImages" / vid
        folder.mkdir(parents=True)
        for name, frame in zip(names, _frames()):
            Image.fromarray(frame).save(folder / f"{name}.jpg", quality=90)
        meta["videos"][vid] = {"frames": names, "expressions": {
            "0": {"exp": "the red square", "obj_id": [0], "anno_id": [2 * v]},
            "1": {"exp": "both things", "obj_id": [0, 1], "anno_id": [2 * v, 2 * v + 1]}}}
        for anno in (2 * v, 2 * v + 1):
            rles = [encode_rle(frame[..., 0] > (100 if anno % 2 else 0)) for frame in _frames()]
            masks[str(anno)] = [None if anno % 2 and t == 1 else r for t, r in enumerate(rles)]
        for exp in ("0", "1"):
            pred = root / "pred" / vid / exp
            pred.mkdir(parents=True)
            for name, frame in zip(names, _frames()):
                Image.fromarray((frame[..., 0] > 0).astype(np.uint8) * 255).save(pred / f"{name}.png")
    (split / "meta_expressions.json").write_text(json.dumps(meta))
    (split / "mask_dict.json").write_text(json.dumps(masks))


def _jpegs(folder: Path, names: list[str]) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for name, frame in zip(names, _frames(len(names))):
        Image.fromarray(frame).save(folder / f"{name}.jpg", quality=90)


def _write_revos(root: Path) -> None:
    """A ReVOS ``valid`` split: one video, a referring and a no-target expression, RLE masks."""
    from flowrvs.io.masks import encode_rle

    names = [f"{i:05d}" for i in range(T)]
    _jpegs(root / "JPEGImages" / "vid1", names)
    masks = [frame[..., 0] > 0 for frame in _frames()]
    meta = {"videos": {"vid1": {"vid_id": 0, "frames": names, "height": H, "width": W, "expressions": {
        "0": {"exp": "the red square", "obj_id": [0], "anno_id": [11], "type_id": 0},
        "1": {"exp": "the dragon", "obj_id": [], "anno_id": [], "type_id": 2}}}}}
    (root / "meta_expressions_valid_.json").write_text(json.dumps(meta))
    (root / "mask_dict.json").write_text(json.dumps({"11": [encode_rle(m) for m in masks]}))
    (root / "mask_dict_foreground.json").write_text(json.dumps({"vid1": {"masks_rle": [encode_rle(m) for m in masks]}}))


def _write_ytvos(root: Path) -> None:
    """A Ref-YouTube-VOS ``train`` split: one video, two objects in palette PNG annotations."""
    from PIL import Image

    names = [f"{5 * i:05d}" for i in range(T)]
    _jpegs(root / "train" / "JPEGImages" / "vidA", names)
    folder = root / "train" / "Annotations" / "vidA"
    folder.mkdir(parents=True)
    for name, frame in zip(names, _frames()):
        index = Image.fromarray(((frame[..., 0] > 0) + 2 * (frame[..., 1] > 100)).astype(np.uint8), mode="P")
        index.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        index.save(folder / f"{name}.png")
    meta = root / "meta_expressions" / "train" / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"videos": {"vidA": {"frames": names, "expressions": {
        "0": {"exp": "the red square", "obj_id": "1"}, "1": {"exp": "the green one", "obj_id": "2"}}}}}))


def _write_weights(root: Path) -> None:
    """A small ``.safetensors`` and ``.pth``, an embedding-cache entry and a latent cache."""
    import torch
    from safetensors.torch import save_file

    from flowrvs.models.text import EmbeddingCache
    from flowrvs.training.latent_cache import LatentCache

    state = {"proj.weight": torch.arange(12.0).reshape(3, 4), "proj.bias": torch.ones(3)}
    save_file(state, str(root / "weights.safetensors"), metadata={"format": "pt"})
    torch.save(state, root / "weights.pth")
    EmbeddingCache(root / "embeddings").put("fuzz-model", "the red square", 8, torch.arange(20.0).reshape(5, 4))
    z = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).reshape(2, 2, 2, 2)
    LatentCache(video_mean=[z], video_std=[z + 1], mask=[z * 0], mask_index=[0], sentence=["the red square"],
                video=[0], group=[0]).save(root / "latents.safetensors")


@cache
def tiny_pipe():
    """The tiny-synthetic pipeline on the CPU, loaded once."""
    from flowrvs.pipelines.loader import load_pipeline

    return load_pipeline("tiny-synthetic", device="cpu", dtype="float32")


def copy_seed(name: str, dest: Path) -> Path:
    """Copy the seed file or folder ``name`` to ``dest`` (files hard-linked where possible)."""
    src = seeds() / name
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    return dest


def pick_file(data: st.DataObject, folder: Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """One file under ``folder`` (with one of ``suffixes``), as hypothesis draws it."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (suffixes is None or p.suffix in suffixes))
    return data.draw(st.sampled_from(files))


# ---- readers: each builds one case and returns the call to run ---------------------------------
def read_to_end(source) -> int:
    """Open ``source`` with ``open_video`` and decode every frame (what ``flowrvs segment`` does)."""
    from flowrvs.io.read import open_video

    return sum(1 for _ in open_video(source))


def video_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """A mutated mp4/avi/mkv, sometimes under another video suffix."""
    name = data.draw(st.sampled_from(["clip.mp4", "clip.avi", "clip.mkv"]))
    suffix = data.draw(st.sampled_from([Path(name).suffix] * 4 + [".mp4", ".webm", ".mov", ".mkv"]))
    path = copy_seed(name, inp / f"video{suffix}")
    mutate_file(data, path)
    return lambda: read_to_end(path)


def gif_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    path = copy_seed("clip.gif", inp / "clip.gif")
    mutate_file(data, path)
    return lambda: read_to_end(path)


def image_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    name = data.draw(st.sampled_from(["frame.png", "frame.jpg"]))
    path = copy_seed(name, inp / data.draw(st.sampled_from([name, "frame.jpeg", "frame.webp", "frame.bmp"])))
    mutate_file(data, path)
    return lambda: read_to_end(path)


FRAME_NAMES = st.one_of(st.sampled_from(["1", "2", "10", "a", "A", ".h", "1.5", "00000", " "]),
                        st.text(alphabet="0123456789abcAB._- é", min_size=1, max_size=8))


def folder_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """A folder of 0-4 frames: drawn names and suffixes, some damaged or of another size."""
    from PIL import Image

    folder = inp / "frames"
    folder.mkdir(parents=True)
    for name in data.draw(st.lists(FRAME_NAMES, max_size=4)):
        suffix = data.draw(st.sampled_from([".png", ".jpg", ".PNG", ".jpeg", ".bmp", ".webp", ".txt"]))
        target = folder / f"{name}{suffix}"
        if target.exists() or target.name in (".", ".."):
            continue
        how = data.draw(st.sampled_from(["seed", "seed", "mutated", "other-size", "folder"]))
        if how == "folder":
            target.mkdir()
        elif how == "other-size":
            Image.fromarray(_frames(1, H + 2, W)[0]).save(target, format="PNG")
        else:
            copy_seed(data.draw(st.sampled_from(["frame.png", "frame.jpg"])), target)
            if how == "mutated":
                mutate_file(data, target)
    return lambda: read_to_end(folder)


SENTENCE_KEYS = st.one_of(st.sampled_from(["clip", "clip.mp4", "shots", "missing", "clip.MP4"] + HOSTILE_NAMES),
                          st.text(max_size=6))
SENTENCES = st.one_of(st.sampled_from(["the red square", "", "   ", "&quot;", "\\", "é" * 50]), st.text(max_size=20))


def _videos_folder(inp: Path) -> Path:
    """``inp/videos`` with ``clip.mp4`` and ``shots/`` (two frames)."""
    videos = inp / "videos"
    copy_seed("clip.mp4", videos / "clip.mp4")
    for i in range(2):
        copy_seed("frame.png", videos / "shots" / f"{i}.png")
    return videos


def _sentence_file(data: st.DataObject, inp: Path) -> Path:
    """A JSON or CSV sentence file, generated (hostile names and values) and maybe garbled."""
    mapping = data.draw(st.dictionaries(SENTENCE_KEYS, st.one_of(st.lists(SENTENCES, max_size=3), SENTENCES,
                                                                   json_values()), max_size=3))
    form = data.draw(st.sampled_from(["json", "csv", "txt"]))
    if form == "csv" or (form == "txt" and data.draw(st.booleans())):
        header = data.draw(st.sampled_from(["video,sentence", "Video , Sentence", "name,text", ""]))
        buffer = io.StringIO()
        buffer.write(header + "\n")
        for key, value in mapping.items():
            for sentence in value if isinstance(value, list) else [value]:
                buffer.write(",".join(json.dumps(str(x)) if data.draw(st.booleans()) else str(x)
                                      for x in (key, sentence)) + "\n")
        blob = buffer.getvalue().encode("utf-8", "surrogatepass")
    else:
        blob = json.dumps(mapping, allow_nan=True).encode("utf-8", "surrogatepass")
    if data.draw(st.integers(0, 3)) == 0:
        blob = mutate_bytes(data, blob)
    path = inp / f"sentences.{form}"
    path.write_bytes(blob)
    return path


def _batch(videos: Path, sentences: Path, out: Path, record: dict | None = None) -> object:
    from flowrvs.apps.batch import segment_batch
    from flowrvs.options import SegmentOptions

    return segment_batch(tiny_pipe, videos, sentences, out, options=SegmentOptions(size=(16, 16)), overlay=False,
                         progress=False, log=lambda msg: None, run_record=record)


def sentences_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    videos, sentences = _videos_folder(inp), _sentence_file(data, inp)
    return lambda: _batch(videos, sentences, out)


RUN_RECORD = {"model": "tiny-synthetic", "size": [16, 16]}


@cache
def batch_seed() -> Path:
    """A finished ``segment-batch`` output of ``clip`` and ``shots`` (made once)."""
    root = seeds() / "batch"
    videos = _videos_folder(root)
    sentences = root / "sentences.json"
    sentences.write_text(json.dumps({"clip": ["the red square", "a thing"], "shots": "the red square"}))
    _batch(videos, sentences, root / "out", RUN_RECORD)
    return root


def batch_resume_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """A finished batch output with a mutated or deleted ``masks.json``, status record or run record."""
    seed = batch_seed()
    for name in ("videos", "sentences.json"):
        copy_seed(f"batch/{name}", inp / name)
    shutil.rmtree(out)
    shutil.copytree(seed / "out", out)
    for _ in range(data.draw(st.integers(1, 2))):
        target = pick_file(data, out, (".json", ".png"))
        if data.draw(st.integers(0, 4)) == 0:
            target.unlink()
        else:
            mutate_file(data, target)
    return lambda: _batch(inp / "videos", inp / "sentences.json", out, RUN_RECORD)


def run_cli(argv: list[str]) -> None:
    """``flowrvs ARGV`` in-process: exit 0 is a result, exit 2 with one error line is a refusal."""
    from flowrvs.apps.cli import main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except SystemExit as exc:  # argparse: never expected for the arguments given here
        raise RuntimeError(f"SystemExit {exc.code}: {err.getvalue()[-300:]}") from exc
    errors = [line for line in err.getvalue().splitlines() if "error:" in line or "Traceback" in line]
    if rc == 0 and not errors:
        return
    if rc == 2 and len(errors) == 1 and errors[0].startswith(f"flowrvs {argv[0]}: error: "):
        raise Accepted(errors[0])
    raise RuntimeError(f"exit {rc} with {len(errors)} error lines: {errors[:2]}")


RLE_ALPHABET = st.characters(min_codepoint=48, max_codepoint=111)


def _mutate_rles(data: st.DataObject, path: Path) -> None:
    """Garble the counts or size of one RLE of a ``mask_dict.json`` (or the file as a whole)."""
    try:
        masks = json.loads(path.read_bytes())
        rles = [r for v in masks.values() for r in (v["masks_rle"] if isinstance(v, dict) else v) if isinstance(r, dict)]
    except (ValueError, TypeError, KeyError, AttributeError):  # mutated already
        rles = []
    if not rles:
        mutate_file(data, path)
        return
    rle = data.draw(st.sampled_from(rles))
    what = data.draw(st.sampled_from(["counts", "counts", "size", "file"]))
    if what == "counts":
        rle["counts"] = data.draw(st.one_of(st.text(RLE_ALPHABET, max_size=12), st.lists(st.integers(-2, 400), max_size=6),
                                            json_values()))
    elif what == "size":
        rle["size"] = data.draw(st.one_of(st.lists(st.sampled_from(BIG_INTS + [H, W, 0]), max_size=3), json_values()))
    path.write_text(json.dumps(masks, allow_nan=True))
    if what == "file":
        mutate_file(data, path)


def _mutate_mevis(data: st.DataObject, root: Path) -> None:
    """One of a MeViS split's files mutated: its meta JSON, its RLEs, a JPEG or a prediction PNG."""
    split = root / "valid_u"
    what = data.draw(st.sampled_from(["meta", "masks", "jpeg", "pred"]))
    if what == "meta":
        mutate_file(data, split / "meta_expressions.json")
    elif what == "masks":
        _mutate_rles(data, split / "mask_dict.json")
    elif what == "jpeg":
        mutate_file(data, pick_file(data, split / "JPEGImages"))
    elif (root / "pred").is_dir():
        target = pick_file(data, root / "pred")
        target.unlink() if data.draw(st.integers(0, 3)) == 0 else mutate_file(data, target)


def score_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """``flowrvs score`` of a MeViS split with one mutated file."""
    root = copy_seed("mevis", inp / "mevis")
    for _ in range(data.draw(st.integers(1, 2))):
        _mutate_mevis(data, root)
    argv = ["score", str(root / "pred"), "--root", str(root), "--split", "valid_u", "--out", str(out)]
    return lambda: run_cli(argv + (["--allow-missing"] if data.draw(st.booleans()) else []))


def mevis_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """Every clip (frames and masks) of a MeViS split with one or two mutated files."""
    root = copy_seed("mevis", inp / "mevis")
    for _ in range(data.draw(st.integers(1, 2))):
        _mutate_mevis(data, root)

    def call() -> int:
        from flowrvs.data import open_dataset

        dataset = open_dataset("mevis", root, "valid_u")
        return sum(len(dataset.load_clip(e).frames) for e in dataset.all_expressions())

    return call


def dataset_case(name: str, split: str) -> Build:
    """A reader of dataset ``name``: its seed split with one or two files (JSON, RLE, image) mutated,
    then every clip (frames and masks) of every expression read."""

    def build(data: st.DataObject, inp: Path, out: Path) -> Call:
        root = copy_seed(name, inp / name)
        for _ in range(data.draw(st.integers(1, 2))):
            target = pick_file(data, root)
            if target.name.startswith("mask_dict") and data.draw(st.booleans()):
                _mutate_rles(data, target)
            else:
                mutate_file(data, target)

        def call() -> int:
            from flowrvs.data import open_dataset

            dataset = open_dataset(name, root, split)
            frames = sum(len(dataset.load_frames(video)) for video in dataset.videos())
            for expression in dataset.all_expressions():
                dataset.load_mask(expression)
            if hasattr(dataset, "load_foreground"):
                for video in dataset.videos():
                    dataset.load_foreground(video)
            return frames

        return call

    return build


def coco_counts(text: bytes) -> list[int] | None:
    """The run lengths of a COCO compressed RLE string (None when it is cut inside a number)."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                return None
            c = text[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        counts.append(x + (counts[-2] if len(counts) > 2 else 0))
    return counts


def reference_decode(rle) -> np.ndarray | None:
    """A COCO RLE decoded without pycocotools, or None when it is not a valid RLE."""
    try:
        h, w = (int(s) for s in rle["size"]) if all(type(s) is int for s in rle["size"]) else (None, None)
        counts = rle["counts"]
    except (TypeError, KeyError, ValueError):
        return None
    if h is None or h < 0 or w < 0:
        return None
    if isinstance(counts, str):
        counts = counts.encode() if counts.isascii() else None
    if isinstance(counts, bytes):
        counts = coco_counts(counts)
    if not isinstance(counts, list) or not all(type(c) is int and c >= 0 for c in counts) or sum(counts) != h * w:
        return None
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def rle_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """``decode_rle`` on a valid, mutated or generated RLE; it must equal :func:`reference_decode`
    or refuse (ValueError, as its callers expect)."""
    from flowrvs.io.masks import decode_rle, encode_rle

    h, w = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 6))
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)), dtype=bool).reshape(h, w)
    rle = encode_rle(mask) if h and w else {"size": [h, w], "counts": ""}
    what = data.draw(st.sampled_from(["valid", "counts", "list", "size", "value"]))
    if what == "counts":
        rle["counts"] = mutate_bytes(data, rle["counts"].encode()).decode("latin-1")
    elif what == "list":
        rle["counts"] = data.draw(st.lists(st.integers(-2, 12), max_size=8))
    elif what == "size":
        rle["size"] = data.draw(st.one_of(st.lists(st.sampled_from(BIG_INTS + [h, w]), max_size=3), json_values()))
    elif what == "value":
        rle = mutate_value(data, rle)

    def call() -> None:
        want = reference_decode(rle)
        try:
            got = decode_rle(rle)
        except ValueError as err:
            if want is not None:
                raise RuntimeError(f"decode_rle refused a valid RLE {rle!r}") from err
            raise Accepted(str(err)) from err
        if want is None:
            raise RuntimeError(f"decode_rle accepted an invalid RLE {rle!r}")
        if not np.array_equal(got, want):
            raise RuntimeError(f"decode_rle of {rle!r} differs from the reference decoder")

    return call


def train_config_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """``load_config`` on configs/tiny-synthetic.yaml mutated as a mapping or as text, or generated YAML."""
    import yaml

    from flowrvs.training.config import load_config

    text = (REPO / "configs" / "tiny-synthetic.yaml").read_text()
    how = data.draw(st.sampled_from(["value", "value", "text", "generated"]))
    if how == "value":
        blob = yaml.safe_dump(mutate_value(data, yaml.safe_load(text)), allow_unicode=True).encode()
    elif how == "text":
        blob = mutate_bytes(data, text.encode())
    else:
        blob = yaml.safe_dump(data.draw(json_values()), allow_unicode=True).encode()
    path = inp / "config.yaml"
    path.write_bytes(blob)
    overrides = data.draw(st.lists(st.sampled_from(["seed=1", "data.size=[a", "model.=1", "x", "optim.lr=-1",
                                                    "data.datasets=[]", "=", "stage=nope"]), max_size=2))
    return lambda: load_config(path, overrides)


def _link_tree(src: Path, dest: Path) -> None:
    """``dest`` a copy of ``src`` whose files are hard links (mutate_file replaces, never edits, them)."""
    shutil.copytree(src, dest, copy_function=os.link)


def _mutate_safetensors(data: st.DataObject, path: Path) -> None:
    """Regenerate a safetensors header as a mutated JSON value (maybe with a wrong length), or garble bytes."""
    blob = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", blob[:8])
        value = json.loads(blob[8 : 8 + n])
    except (struct.error, ValueError):  # mutated already
        value = None
    if value is None or data.draw(st.booleans()):
        mutate_file(data, path)
        return
    header = json.dumps(mutate_value(data, value, small=True)).encode()
    length = data.draw(st.sampled_from([len(header)] * 4 + [0, len(header) + 1, len(header) - 1, 2**63, 10**8]))
    path.unlink()
    path.write_bytes(struct.pack("<Q", length % 2**64) + header + blob[8 + n :])


def model_folder_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """``load_pipeline`` on the tiny-synthetic folder with one file mutated (configs: small numbers only,
    so a case never builds a giant model)."""
    from flowrvs.loading.resolve import shipped_model_dir
    from flowrvs.pipelines.loader import load_pipeline

    folder = inp / "model"
    _link_tree(shipped_model_dir("tiny-synthetic"), folder)
    for _ in range(data.draw(st.integers(1, 2))):
        target = pick_file(data, folder, (".json", ".safetensors"))
        if target.suffix == ".safetensors":
            _mutate_safetensors(data, target)
        elif data.draw(st.integers(0, 5)) == 0:
            target.unlink()
        else:
            mutate_file(data, target, small=True)
    return lambda: load_pipeline(str(folder), device="cpu", dtype="float32")


def safetensors_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    from flowrvs.loading.state_dicts import load_weights_file, tensor_dict

    path = copy_seed("weights.safetensors", inp / "weights.safetensors")
    _mutate_safetensors(data, path)
    return lambda: tensor_dict(load_weights_file(path), path)


def checkpoint_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    from flowrvs.loading.state_dicts import load_weights_file, tensor_dict

    path = copy_seed("weights.pth", inp / data.draw(st.sampled_from(["weights.pth", "weights.pt", "weights.bin"])))
    mutate_file(data, path)
    return lambda: tensor_dict(load_weights_file(path), path)


def embedding_cache_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """A mutated entry of an embedding cache: a miss (None) or the tensor it was written with."""
    import torch

    from flowrvs.models.text import EmbeddingCache

    folder = copy_seed("embeddings", inp / "embeddings")
    _mutate_safetensors(data, next(folder.iterdir()))

    def call() -> None:
        got = EmbeddingCache(folder).get("fuzz-model", "the red square", 8)
        if got is not None and not torch.equal(got, torch.arange(20.0).reshape(5, 4)):
            raise RuntimeError("the embedding cache returned a tensor it was not given")

    return call


def latent_cache_case(data: st.DataObject, inp: Path, out: Path) -> Call:
    """A mutated latent cache: a StaleCacheError (its caller rebuilds) or the cache."""
    from flowrvs.training.latent_cache import LatentCache, StaleCacheError

    path = copy_seed("latents.safetensors", inp / "latents.safetensors")
    _mutate_safetensors(data, path)

    def call() -> None:
        try:
            LatentCache.load(path)
        except StaleCacheError as err:
            raise Accepted(str(err)) from err

    return call


READERS: dict[str, Build] = {
    "video": video_case, "gif": gif_case, "image": image_case, "frame-folder": folder_case,
    "sentences": sentences_case, "batch-resume": batch_resume_case, "score": score_case, "rle": rle_case,
    "mevis": mevis_case, "revos": dataset_case("revos", "valid"), "ytvos": dataset_case("ytvos", "train"),
    "train-config": train_config_case, "model-folder": model_folder_case,
    "safetensors": safetensors_case, "checkpoint": checkpoint_case, "embedding-cache": embedding_cache_case,
    "latent-cache": latent_cache_case,
}


# ---- running -----------------------------------------------------------------------------------
def run_one(name: str, build: Build, data: st.DataObject, root: Path, tally: Tally, save: Path | None) -> None:
    """Build and run one case in a fresh ``root/case`` (``in/``, ``out/``) and record its outcome."""
    case = root / "case"
    inp, out = case / "in", case / "out"
    inp.mkdir(parents=True)
    out.mkdir()
    try:
        call = build(data, inp, out)
        before = listing(root, out)
        kind, signature, message = outcome(call)
        escaped = sorted(listing(root, out) - before)
        if escaped and kind != "finding":
            kind, signature, message = "finding", "wrote outside the output folder", ", ".join(escaped[:3])
        tally.cases += 1
        if kind == "result":
            tally.results += 1
        elif kind == "refused":
            tally.refused += 1
        else:
            finding = tally.findings.setdefault(signature, Finding(name, signature, message))
            finding.count += 1
            if save is not None and finding.saved is None:
                finding.saved = str(save / f"{name}-{len(tally.findings)}")
                shutil.copytree(inp, finding.saved, dirs_exist_ok=True)
    finally:
        shutil.rmtree(case, ignore_errors=True)
        for stray in root.iterdir():  # an escape into root itself: removed so the next case starts clean
            shutil.rmtree(stray, ignore_errors=True) if stray.is_dir() else stray.unlink()


def fuzz_reader(name: str, cases: int, seed: int, save: Path | None = None) -> Tally:
    """Run ``cases`` hypothesis-generated cases of reader ``name`` with ``seed``."""
    tally = Tally()
    build = READERS[name]
    root = Path(tempfile.mkdtemp(prefix=f"flowrvs-fuzz-{name}-"))

    @hypothesis_seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(st.data())
    def one(data: st.DataObject) -> None:
        run_one(name, build, data, root, tally, save)

    try:
        with quiet():
            one()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return tally


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the library's warning lines (a refused cache entry logs one) while fuzzing."""
    logger = logging.getLogger("flowrvs")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def report(tallies: dict[str, Tally]) -> str:
    """A table of cases per reader and the findings, one line each."""
    lines = [f"{'reader':<16}{'cases':>7}{'results':>9}{'refused':>9}{'findings':>10}"]
    for name, t in tallies.items():
        lines.append(f"{name:<16}{t.cases:>7}{t.results:>9}{t.refused:>9}{sum(f.count for f in t.findings.values()):>10}")
    total = sum(t.cases for t in tallies.values())
    found = [f for t in tallies.values() for f in t.findings.values()]
    lines.append(f"{'total':<16}{total:>7}   distinct findings: {len(found)}")
    for f in found:
        lines.append(f"FINDING {f.reader}: {f.signature} ({f.count} cases): {f.message}"
                     + (f" [input kept in {f.saved}]" if f.saved else ""))
    return "\n".join(lines)


def tally_json(tally: Tally) -> dict:
    return {"cases": tally.cases, "results": tally.results, "refused": tally.refused,
            "findings": [vars(f) for f in tally.findings.values()]}


def tally_from_json(data: dict) -> Tally:
    findings = {f["signature"]: Finding(**f) for f in data["findings"]}
    return Tally(data["cases"], data["results"], data["refused"], findings)


def isolated(name: str, args: argparse.Namespace) -> Tally:
    """Fuzz reader ``name`` in a child process, so a crash (a segfault in a C library) is a finding
    and not the end of the run."""
    import subprocess

    argv = [sys.executable, __file__, "--readers", name, "--cases", str(args.cases), "--seed", str(args.seed),
            "--in-process"] + (["--save", str(args.save)] if args.save else [])
    proc = subprocess.run(argv, capture_output=True, text=True)
    last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    if proc.returncode in (0, 1) and last and last[0].startswith("{"):
        return tally_from_json(json.loads(last[0]))
    crash = Finding(name, f"process ended with status {proc.returncode}", proc.stderr.strip()[-300:], count=1)
    return Tally(findings={crash.signature: crash})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz flowrvs's readers (see the module docstring).")
    parser.add_argument("--cases", type=int, default=100, help="cases per reader (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated readers (default: all)")
    parser.add_argument("--save", type=Path, default=None, help="keep the input of each finding's first case here")
    parser.add_argument("--in-process", action="store_true",
                        help="fuzz in this process (default: one child process per reader; prints JSON)")
    args = parser.parse_args(argv)
    names = [n for n in args.readers.split(",") if n]
    unknown = [n for n in names if n not in READERS]
    if unknown:
        parser.error(f"unknown readers {unknown}; choose from {', '.join(READERS)}")
    os.environ.setdefault("FLOWRVS_CACHE", "off")  # no embedding cache of the user's touched by segment-batch cases
    if args.in_process:
        tallies = {name: fuzz_reader(name, args.cases, args.seed, args.save) for name in names}
        print(json.dumps(tally_json(tallies[names[0]])) if len(names) == 1 else report(tallies))
        return 0
    tallies = {}
    for name in names:
        tallies[name] = isolated(name, args)
        print(f"{name}: {tallies[name].cases} cases, {len(tallies[name].findings)} distinct findings", file=sys.stderr)
    print(report(tallies))
    return 1 if any(t.findings for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
