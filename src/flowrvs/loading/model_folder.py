"""The model folder format: its settings, what it must hold, and writing one.

A model folder is a diffusers pipeline folder: ``model_index.json`` (the components and the
:class:`FlowRVSConfig` settings), ``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``
and ``scheduler/``. Which folder a name leads to is :mod:`flowrvs.loading.resolve`'s business.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.flow import NUM_TRAIN_TIMESTEPS
from flowrvs.io.frames import RESIZE_RULES, WORKING_BOX
from flowrvs.models.defaults import TEXT_LEN

MODEL_PARTS = ("transformer", "vae", "text_encoder", "tokenizer")
INDEX_FILE = "model_index.json"
# the pipeline classes a folder's index may name (``_class_name``): the method it runs
PIPELINE_CLASS_NAMES = ("FlowRVSPipeline", "REMPipeline")


@dataclass
class FlowRVSConfig:
    """Settings of a model folder that are not weights (entries of ``model_index.json``).

    text_len: prompt embeddings are zero-padded to this many tokens (``TEXT_LEN``, 256, now;
    64 in older checkpoints). mask_latent_normalized: mask latents carry the video normalisation (older
    checkpoints). flow_shift / num_steps: inference time grid. size: ``(short, long)`` box
    frames are resized into (``WORKING_BOX``, 480x832). source: start point of the flow, ``"video"`` (FlowRVS) or
    ``"noise"`` (text-to-video style, an ablation). prediction: what the DiT outputs,
    ``"velocity"`` (FlowRVS) or ``"mask"`` (the mask latent itself, an ablation).
    mask_threshold: a pixel is foreground where the mask decoder's output exceeds this (0 is
    probability 0.5). clamp_logits: clamp the decoder output to [-1, 1] before the resize, as
    the public code does (``False`` keeps the raw logits, needed for a tuned threshold outside
    (-1, 1)). resize_rule: ``"public"`` (scale into the box as given, sides floored to multiples
    of 16) or ``"oriented"`` (the box turned to the frame's orientation, sides rounded).
    """

    text_len: int = TEXT_LEN
    mask_latent_normalized: bool = False
    flow_shift: float = 3.0
    num_steps: int = 1
    size: tuple[int, int] = WORKING_BOX
    source: str = "video"
    prediction: str = "velocity"
    mask_threshold: float = 0.0
    clamp_logits: bool = True
    resize_rule: str = "public"

    def __post_init__(self):
        self.size = tuple(int(s) for s in self.size)
        self.mask_threshold = float(self.mask_threshold)
        self.text_len, self.num_steps = int(self.text_len), int(self.num_steps)
        if self.source not in ("video", "noise"):
            raise FlowRVSError(f"source must be 'video' or 'noise', got {self.source!r}")
        if self.prediction not in ("velocity", "mask"):
            raise FlowRVSError(f"prediction must be 'velocity' or 'mask', got {self.prediction!r}")
        if self.resize_rule not in RESIZE_RULES:
            raise FlowRVSError(f"resize_rule must be one of {', '.join(RESIZE_RULES)}, got {self.resize_rule!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "FlowRVSConfig":
        """Settings from a ``model_index.json``; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["size"] = list(self.size)
        return out


def check_model_dir(path: Path) -> Path:
    """``path`` if it is a model folder with every part named in its index, else a one-line
    error naming what is missing."""
    if not path.is_dir():
        raise FlowRVSError(f"model {path} is not a folder")
    missing = [p + "/" for p in MODEL_PARTS if not (path / p).is_dir()]
    if not (path / INDEX_FILE).is_file():
        missing.insert(0, INDEX_FILE)
    if missing:
        raise FlowRVSError(f"model folder {path} is missing {', '.join(missing)}")
    index = read_index(path)
    unnamed = [p for p in MODEL_PARTS if not isinstance(index, dict) or not _names_a_class(index.get(p))]
    if unnamed:
        raise FlowRVSError(f"model folder {path} is not a diffusers pipeline folder: its {INDEX_FILE} "
                           f"does not name its {', '.join(unnamed)}")
    if "scheduler" in index and not _names_a_class(index["scheduler"]):  # optional: absent, or [null, null]
        raise FlowRVSError(f"{path / INDEX_FILE}: scheduler must be [library, class] or [null, null], "
                           f"got {index['scheduler']!r}")
    return path


def _names_a_class(entry) -> bool:
    """An index entry of a component: ``[library, class]`` (or ``[null, null]``)."""
    return isinstance(entry, list) and len(entry) == 2


def read_index(folder: str | Path):
    """The parsed ``model_index.json`` of a model folder (any JSON value), or a one-line error."""
    index_path = Path(folder) / INDEX_FILE
    try:
        return json.loads(index_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FlowRVSError(f"cannot read {index_path}: {first_line(err)}") from err


def folder_class_name(folder: str | Path) -> str:
    """The pipeline class a model folder's ``model_index.json`` names (one of
    :data:`PIPELINE_CLASS_NAMES`), or a one-line error."""
    index_path = Path(folder) / INDEX_FILE
    index = read_index(folder)
    name = index.get("_class_name") if isinstance(index, dict) else None
    if name not in PIPELINE_CLASS_NAMES:
        raise FlowRVSError(f"{index_path} names the pipeline class {name!r}; flowrvs runs {', '.join(PIPELINE_CLASS_NAMES)}")
    return name


def model_fingerprint(folder: str | Path, content_limit: int = 64 << 20) -> str:
    """A short hash that changes when any file of a model folder changes.

    Files up to ``content_limit`` bytes (configs, a small model's weights) are hashed by content;
    larger ones by size and modification time, so a multi-GB model is not read just to name it.
    """
    folder = Path(folder)
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0".encode())
        if stat.st_size <= content_limit:
            digest.update(path.read_bytes())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def default_scheduler():
    """The scheduler the public code steps with: flow-matching Euler, no shift of its own
    (the shift is applied to the timesteps, :func:`flowrvs.flow.public_timesteps`)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=1.0)


def write_model_index(folder: Path, config: FlowRVSConfig | None, tokenizer_class: str = "AutoTokenizer",
                      class_name: str = "FlowRVSPipeline") -> None:
    """Write a diffusers ``model_index.json`` (components and :class:`FlowRVSConfig`; no settings
    for ``config=None``: the class's defaults then apply) and the scheduler's config into a folder
    whose parts are written by other means (conversion)."""
    import diffusers

    from flowrvs import __version__

    index = {
        "_class_name": class_name,
        "_diffusers_version": diffusers.__version__,
        "_flowrvs_version": __version__,
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", tokenizer_class],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        **(config.to_dict() if config is not None else {}),
    }
    default_scheduler().save_pretrained(Path(folder) / "scheduler")
    (Path(folder) / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


LARGE_MODEL_BYTES = 1 << 30


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files of a model folder's DiT and text encoder."""
    return sum(p.stat().st_size for part in ("transformer", "text_encoder") for p in (folder / part).glob("*.safetensors"))


def link_or_copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder, hard-linking files where the file system allows (umT5-XXL is 11 GB)."""

    def link_or_copy(s, d):
        s = os.path.realpath(s)  # a hub snapshot holds relative links to its blobs: link the blob
        try:
            os.link(s, d)
        except OSError:  # another file system, or one without hard links
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy)
