"""Where benchmark predictions go under an output folder ``OUT``, and how they are packaged.

Every layout holds 0/255 (or indexed) PNGs named after the dataset's frame names, at the frames'
size, one folder per expression, each folder written atomically (a folder that exists is complete):

* MeViS: ``OUT/predictions/<video>/<exp_id>/<frame>.png`` and ``OUT/submission.zip`` holding
  ``<video>/<exp_id>/<frame>.png`` at its top (the challenge server's layout).
* Ref-YouTube-VOS: ``OUT/predictions/Annotations/<video>/<exp_id>/<frame>.png`` and
  ``OUT/submission.zip`` holding ``Annotations/<video>/<exp_id>/<frame>.png``.
* Ref-DAVIS17: ``OUT/predictions/anno_<i>/<video>/<exp_id>/<frame>.png``, ``i`` the position of the
  expression's annotator set in ``RefDAVISDataset.annotator_labels()`` (0..3 normally); indexed
  ('P') PNGs, 0 = background, 1 = the referred object. Also ``OUT/official/anno_<i>/<video>/<frame>.png``
  for every annotator set and every video (:func:`write_davis_official`): one indexed PNG per frame,
  pixel = the ``obj_id`` of the set's expression that predicts it (a later obj_id wins an overlap;
  all 0 where the video has no expression of that set), the layout of the DAVIS-2017 evaluation
  toolkit (``--task unsupervised --results_path OUT/official/anno_<i>``). No zip (there is no server).
* Long-RVOS: ``OUT/predictions/<video>/<exp_id>/<frame>.png``, 0/255; ReVOS: the same with 0/1
  PNGs (what its official scorer reads; a video id may hold slashes, so may its folder). No zip.

Every expression is written through :class:`flowrvs.io.writer.SegmentationWriter` in the
:class:`~flowrvs.io.writer.SubmissionFolders` layout, pixel values :data:`PIXEL_VALUES`.

The dataset is any reader of :mod:`flowrvs.data` (only its ``videos``, ``frame_names``,
``expressions`` and, for Ref-DAVIS17, ``annotator_labels``/``annotator_sets`` are used).
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from flowrvs.errors import FlowRVSError
from flowrvs.eval.davis import MAX_PROPOSALS
from flowrvs.eval.predictions import davis_index_frame, read_prediction_mask
from flowrvs.io.atomic import atomic_dir, atomic_path, remove_stale_temps
from flowrvs.io.writer import SegmentationWriter, SubmissionFolders, save_indexed

__all__ = [
    "Layout",
    "PIXEL_VALUES",
    "davis_set_dir",
    "davis_sets",
    "davis_paint_order",
    "write_submission_zip",
    "write_davis_official",
]

def davis_set_dir(index: int) -> str:
    """Folder (under a Ref-DAVIS prediction folder) of the ``index``-th annotator set: ``anno_<index>``."""
    return f"anno_{index}"


def davis_sets(dataset, videos: Iterable[str] | None = None) -> list[tuple[int, object, set[str]]]:
    """``(index, label, expression keys)`` of each annotator set with an expression in ``dataset``
    (only among ``videos`` when given).

    ``index`` is the set's position in ``dataset.annotator_labels()`` (so also in the full split
    when ``dataset`` is a view of some videos), which names its folder :func:`davis_set_dir`.
    """
    videos = dataset.videos() if videos is None else videos
    keys = {e.key for v in videos for e in dataset.expressions(v)}
    out = []
    for i, (label, members) in enumerate(zip(dataset.annotator_labels(), dataset.annotator_sets())):
        members = set(members) & keys
        if members:
            out.append((i, label, members))
    return out


def davis_paint_order(expressions) -> list[tuple[int, object]]:
    """One video's expressions of one annotator set as ``(pixel value, expression)``, in painting order.

    The value of an expression is its (first) ``obj_id``, or its position + 1 without one; they are
    painted by increasing ``(obj_id, exp_id)``, so where two predictions overlap the later one wins.
    """
    exprs = sorted(expressions, key=lambda e: (e.obj_ids[0] if e.obj_ids else 0, e.exp_id))
    out = []
    for k, e in enumerate(exprs):
        value = int(e.obj_ids[0]) if e.obj_ids else k + 1
        if not 1 <= value <= MAX_PROPOSALS:
            raise FlowRVSError(f"expression {e.key}: obj_id {value} cannot be a DAVIS object proposal "
                               f"(values 1..{MAX_PROPOSALS})")
        out.append((value, e))
    return out


#: Benchmark -> the pixel values of its prediction PNGs (``SubmissionFolders(values=...)``).
PIXEL_VALUES = {"mevis": "0/255", "ytvos": "0/255", "davis": "indexed", "long-rvos": "0/255", "revos": "0/1"}
#: The benchmarks whose predictions are zipped for a server.
ZIPPED = ("mevis", "ytvos")


class Layout:
    """Where the predictions of one benchmark go under ``out`` (see the module docstring).

    ``dataset_name``: a key of :data:`PIXEL_VALUES`; ``dataset``: the split's reader.
    """

    def __init__(self, dataset_name: str, out: str | os.PathLike, dataset) -> None:
        self.dataset_name = dataset_name
        self.out = Path(out)
        self.dataset = dataset
        self._set_index: dict[str, int] = {}
        if dataset_name == "davis":
            for i, members in enumerate(dataset.annotator_sets()):
                for key in members:
                    self._set_index[key] = i

    @property
    def predictions(self) -> Path:
        """The folder handed to the scorer (``out/predictions``)."""
        return self.out / "predictions"

    @property
    def video_root(self) -> Path:
        """The folder holding ``<video>/<exp_id>/`` (Ref-DAVIS: the one of annotator set 0)."""
        return self.predictions / "Annotations" if self.dataset_name == "ytvos" else self.predictions

    @property
    def zip_path(self) -> Path | None:
        """``out/submission.zip`` (None for Ref-DAVIS17, Long-RVOS and ReVOS: no server)."""
        return self.out / "submission.zip" if self.dataset_name in ZIPPED else None

    def expression_dir(self, expr) -> Path:
        """The folder of one expression's frame PNGs."""
        if self.dataset_name == "davis":
            return self.predictions / davis_set_dir(self._set_index[expr.key]) / expr.video / expr.exp_id
        return self.video_root / expr.video / expr.exp_id

    def arcname(self, expr, frame: str) -> str:
        """Name of a frame's PNG inside ``submission.zip``."""
        top = "Annotations/" if self.dataset_name == "ytvos" else ""
        return f"{top}{expr.video}/{expr.exp_id}/{frame}.png"

    def expression_done(self, expr, frames: Sequence[str]) -> bool:
        """Whether ``expr``'s folder exists with a PNG for every one of ``frames``."""
        try:
            present = set(os.listdir(self.expression_dir(expr)))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return all(f"{name}.png" in present for name in frames)

    @contextlib.contextmanager
    def open_writer(self, exprs: Sequence) -> Iterator[SegmentationWriter]:
        """A :class:`SegmentationWriter` of ``exprs`` (one video's, prompts = their sentences) whose
        expression folders appear, all at once, only when the block ends without an error."""
        folders = [self.expression_dir(e) for e in exprs]
        try:
            with contextlib.ExitStack() as stack:
                temps = [stack.enter_context(atomic_dir(folder)) for folder in folders]
                layout = SubmissionFolders(temps, values=PIXEL_VALUES[self.dataset_name])
                with SegmentationWriter(layout, [e.sentence for e in exprs]) as writer:
                    yield writer
        except OSError as err:
            raise FlowRVSError(f"cannot write predictions to {folders[0].parent}: {err}") from err

    def write_masks(self, expr, masks: np.ndarray, frames: Sequence[str]) -> Path:
        """Write one expression's ``(T, H, W)`` masks (nonzero = foreground) as a complete folder
        (through :meth:`open_writer`)."""
        masks = np.asarray(masks).astype(bool)
        with self.open_writer([expr]) as writer:
            for mask, name in zip(masks, frames):
                writer.add(name, None, mask[None])
        return self.expression_dir(expr)

    def remove_stale_temps(self, videos: Iterable[str]) -> None:
        """Delete temporary folders a killed run left beside the expression folders of ``videos``."""
        parents = {self.expression_dir(e).parent for v in videos for e in self.dataset.expressions(v)}
        for parent in sorted(parents):
            remove_stale_temps(parent)


def write_submission_zip(layout: Layout, videos: Sequence[str]) -> Path:
    """Zip the predictions of ``videos`` into ``layout.zip_path`` (atomically, in sorted order)."""
    path = layout.zip_path
    dataset = layout.dataset
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for video in sorted(videos):
                frames = dataset.frame_names(video)
                for expr in sorted(dataset.expressions(video), key=lambda e: e.exp_id):
                    folder = layout.expression_dir(expr)
                    for name in frames:
                        zf.write(folder / f"{name}.png", layout.arcname(expr, name))
    return path


def write_davis_official(layout: Layout, videos: Sequence[str]) -> Path:
    """``out/official/anno_<i>/<video>/<frame>.png``: per annotator set and frame, one indexed PNG of
    object ids (the layout of the DAVIS-2017 toolkit's unsupervised task), for every set that has an
    expression among ``videos`` and every one of ``videos`` that has an expression. Each video folder
    is written atomically. Returns ``out/official``.
    """
    dataset = layout.dataset
    sets = davis_sets(dataset, videos)
    root = layout.out / "official"
    for video in sorted(v for v in set(videos) if dataset.expressions(v)):
        frames = dataset.frame_names(video)
        exprs = dataset.expressions(video)
        # every prediction of a video has the frames' size: take it from any of them
        shape = read_prediction_mask(layout.expression_dir(exprs[0]) / f"{frames[0]}.png").shape
        for i, _, members in sets:
            painted = davis_paint_order([e for e in exprs if e.key in members])
            folder = root / davis_set_dir(i) / video
            try:
                with atomic_dir(folder) as tmp:
                    for name in frames:
                        sources = [(value, layout.expression_dir(e) / f"{name}.png") for value, e in painted]
                        save_indexed(tmp / f"{name}.png", davis_index_frame(sources, shape)[0])
            except OSError as err:
                raise FlowRVSError(f"cannot write {folder}: {err}") from err
    return root
