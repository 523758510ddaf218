"""Scoring saved mask predictions against a dataset split's ground truth (J, F, J&F).

Predictions are laid out as ``PRED_DIR/<video>/<exp_id>/<frame>.png``, one PNG per frame of the
split, from any tool: a pixel is foreground when its value is nonzero (palette PNGs: a nonzero
palette index; RGB: any nonzero channel; with alpha: also a nonzero alpha). A PNG whose size
differs from the ground truth is an error, never resized.

:func:`score_expression` scores one ``(T, H, W)`` prediction; :func:`score_mevis` scores a whole
MeViS split and returns the metrics dict that ``flowrvs score`` writes as ``metrics.json``;
:func:`write_metrics` writes ``metrics.json`` and ``metrics.csv``. Other datasets plug in through
:data:`SCORERS`.

Ref-DAVIS17 is the exception: it is scored as the DAVIS-2017 toolkit's *unsupervised* task
(:mod:`flowrvs.eval.davis`) once per annotator set, on indexed PNGs of object ids per frame,
and the sets are averaged; see :func:`score_davis_split`.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from flowrvs.data.base import Expression, ReferringVideoDataset
from flowrvs.eval.davis import MAX_PROPOSALS
from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path, write_json
from flowrvs.eval.metrics import contour_accuracy, jf_summary, region_similarity

__all__ = [
    "score_expression",
    "read_prediction_mask",
    "score_dataset",
    "score_split",
    "score_mevis",
    "score_ytvos",
    "score_davis",
    "score_davis_split",
    "davis_set_dir",
    "davis_sets",
    "davis_paint_order",
    "davis_index_frame",
    "read_davis_result",
    "SubsetDataset",
    "write_metrics",
    "summary_line",
    "SCORERS",
]


def score_expression(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> tuple[float, float]:
    """Mean J and mean F over the frames of one expression (``(T, H, W)`` or ``(H, W)``, nonzero = fg)."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    if pred.size == 0 and pred.ndim == 3 and pred.shape[0] == 0:
        raise ValueError("cannot score an expression with no frames")
    j = region_similarity(pred, gt)
    f = contour_accuracy(pred, gt, bound_th=bound_th)
    return float(j.mean()), float(f.mean())


def read_prediction_mask(path: Path) -> np.ndarray:
    """One prediction PNG as an ``(H, W)`` bool mask (see the module docstring for what counts as fg)."""
    try:
        with Image.open(path) as img:
            if img.mode == "PA":
                img = img.convert("RGBA")
            arr = np.asarray(img)
            has_alpha = img.mode in ("RGBA", "LA")
    except FileNotFoundError:
        raise FlowRVSError(f"missing prediction {path}") from None
    except (OSError, ValueError) as err:
        raise FlowRVSError(f"cannot read prediction {path}: {err}") from None
    if has_alpha:
        return np.any(arr[..., :-1] != 0, axis=-1) & (arr[..., -1] != 0)
    if arr.ndim == 3:
        return np.any(arr != 0, axis=-1)
    return arr != 0


def _check_predictions(dataset: ReferringVideoDataset, expressions: list[Expression], pred_dir: Path,
                       allow_missing: bool) -> int:
    """Fail fast (before any scoring) on missing prediction folders/frames; return how many are missing."""
    missing: list[Path] = []
    for expr in expressions:
        folder = pred_dir / expr.video / expr.exp_id
        frames = dataset.frame_names(expr.video)
        try:
            present = set(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing.extend(folder / f"{name}.png" for name in frames if f"{name}.png" not in present)
    if missing and not allow_missing:
        raise _missing_error(missing)
    return len(missing)


def score_split(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None, dataset_name: str = "") -> dict:
    """Score ``pred_dir`` against every expression of ``dataset`` (which must have masks).

    Returns ``{"J", "F", "J&F", "num_expressions", "missing_frames", "per_expression": {key: {"J",
    "F", "J&F", "video", "exp_id", "exp"}}}``, with ``key = <video>_<exp_id>`` and scores in [0, 1].
    ``progress=None`` shows a tqdm bar only when stderr is a terminal.
    """
    from tqdm import tqdm

    pred_dir = Path(pred_dir)
    split = getattr(dataset, "split", "?")
    if not dataset.has_masks:
        raise FlowRVSError(f"split {split} has no masks; submit to the server")
    if not pred_dir.is_dir():
        raise FlowRVSError(f"prediction folder {pred_dir} does not exist")
    expressions = dataset.all_expressions()
    if not expressions:
        raise FlowRVSError(f"{dataset_name or 'dataset'} split {split} has no expressions")
    keys: dict[str, Expression] = {}
    for expr in expressions:
        if expr.key in keys:
            raise FlowRVSError(f"two expressions share the result key {expr.key!r}")
        keys[expr.key] = expr
    n_missing = _check_predictions(dataset, expressions, pred_dir, allow_missing)

    if progress is None:
        progress = sys.stderr.isatty()
    per_expression: dict[str, dict] = {}
    for expr in tqdm(expressions, desc="scoring", unit="expr", disable=not progress):
        gt = dataset.load_mask(expr)
        frames = dataset.frame_names(expr.video)
        pred = np.zeros(gt.shape, dtype=bool)
        for t, name in enumerate(frames):
            path = pred_dir / expr.video / expr.exp_id / f"{name}.png"
            if allow_missing and not path.is_file():
                continue  # counted by _check_predictions, scored as empty
            mask = read_prediction_mask(path)
            if mask.shape != gt.shape[1:]:
                raise _size_error(path, mask.shape, gt.shape[1:])
            pred[t] = mask
        j, f = score_expression(pred, gt)
        per_expression[expr.key] = {
            "J": j,
            "F": f,
            "J&F": (j + f) / 2,
            "video": expr.video,
            "exp_id": expr.exp_id,
            "exp": expr.sentence,
        }
    summary = jf_summary([r["J"] for r in per_expression.values()], [r["F"] for r in per_expression.values()])
    return {
        **summary,
        "num_expressions": len(per_expression),
        "missing_frames": n_missing,
        "per_expression": per_expression,
    }


def score_mevis(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score MeViS predictions (``pred_dir/<video>/<exp_id>/<frame>.png``); see :func:`score_split`."""
    return score_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress, dataset_name="MeViS")


class SubsetDataset(ReferringVideoDataset):
    """A read-only view of ``base`` keeping only some videos and/or some expression keys.

    ``videos=None`` keeps every video, ``keys=None`` every expression; videos left without an
    expression are dropped. Anything else (``split``, ``annotator``...) is read from ``base``.
    """

    def __init__(self, base: ReferringVideoDataset, videos=None, keys=None):
        self.base = base
        self.has_masks = base.has_masks
        keep_v = None if videos is None else set(videos)
        keep_k = None if keys is None else set(keys)
        self._expressions = {}
        for v in base.videos():
            if keep_v is not None and v not in keep_v:
                continue
            exps = [e for e in base.expressions(v) if keep_k is None or e.key in keep_k]
            if exps:
                self._expressions[v] = exps

    def __getattr__(self, name):
        if name == "base":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

    def videos(self) -> list[str]:
        return sorted(self._expressions)

    def frame_names(self, video: str) -> list[str]:
        return self.base.frame_names(video)

    def expressions(self, video: str) -> list[Expression]:
        return list(self._expressions.get(video, []))

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        return self.base.load_frames(video, indices)

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        return self.base.load_mask(expression, indices)


def score_ytvos(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score Ref-YouTube-VOS predictions (``pred_dir[/Annotations]/<video>/<exp_id>/<frame>.png``).

    Only a split with ``Annotations/`` (``train``) can be scored locally; valid/test go to the server.
    """
    pred_dir = Path(pred_dir)
    if (pred_dir / "Annotations").is_dir():
        pred_dir = pred_dir / "Annotations"
    return score_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress,
                       dataset_name="Ref-YouTube-VOS")


def davis_set_dir(index: int) -> str:
    """Folder (under a Ref-DAVIS prediction folder) of the ``index``-th annotator set: ``anno_<index>``."""
    return f"anno_{index}"


def davis_sets(dataset) -> list[tuple[int, object, set[str]]]:
    """``(index, label, expression keys)`` of each annotator set with an expression in ``dataset``.

    ``index`` is the set's position in ``dataset.annotator_labels()`` (so also in the full split
    when ``dataset`` is a :class:`SubsetDataset`), which names its folder :func:`davis_set_dir`.
    """
    keys = {e.key for e in dataset.all_expressions()}
    out = []
    for i, (label, members) in enumerate(zip(dataset.annotator_labels(), dataset.annotator_sets())):
        members = set(members) & keys
        if members:
            out.append((i, label, members))
    return out


def davis_paint_order(expressions) -> list[tuple[int, Expression]]:
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


def davis_index_frame(sources, shape: tuple[int, int], *, allow_missing: bool = False) -> tuple[np.ndarray, int]:
    """One ``(H, W)`` uint8 frame of object ids painted from per-expression PNGs.

    ``sources``: ``(value, png path)`` in painting order (:func:`davis_paint_order`); each PNG's
    foreground (see :func:`read_prediction_mask`) gets its value. Returns the frame and how many
    PNGs were missing (only with ``allow_missing``; else a missing PNG is an error).
    """
    index = np.zeros(shape, dtype=np.uint8)
    missing = 0
    for value, path in sources:
        if allow_missing and not path.is_file():
            missing += 1
            continue
        mask = read_prediction_mask(path)
        if mask.shape != tuple(shape):
            raise _size_error(path, mask.shape, shape)
        index[mask] = value
    return index, missing


def read_davis_result(path: Path) -> np.ndarray:
    """One PNG of the DAVIS toolkit's layout as an ``(H, W)`` array of proposal ids (0 = background).

    Indexed ('P') or grayscale PNGs only; a value above :data:`MAX_PROPOSALS` is an error.
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.asarray(img) if mode in ("P", "L", "I", "I;16", "I;16B", "I;16L") else None
    except FileNotFoundError:
        raise FlowRVSError(f"missing prediction {path}") from None
    except (OSError, ValueError) as err:
        raise FlowRVSError(f"cannot read prediction {path}: {err}") from None
    if arr is None:
        raise FlowRVSError(f"prediction {path} is a {mode!r} image; the DAVIS unsupervised protocol needs "
                           f"indexed ('P') or grayscale PNGs whose values are object ids")
    top = int(arr.max()) if arr.size else 0
    if top > MAX_PROPOSALS:
        hint = " (a 0/255 mask? write object ids 1, 2, ...)" if top == 255 else ""
        raise FlowRVSError(f"prediction {path} has pixel value {top}; the DAVIS unsupervised protocol takes at "
                           f"most {MAX_PROPOSALS} object proposals (values 1..{MAX_PROPOSALS}){hint}")
    return arr


def _size_error(path: Path, got: tuple, want: tuple) -> FlowRVSError:
    return FlowRVSError(f"prediction {path} is {got[1]}x{got[0]} but the ground truth is {want[1]}x{want[0]} (WxH)")


def _davis_per_expression_layout(pred_dir: Path) -> bool:
    """Whether ``pred_dir/anno_<i>/<video>/`` holds expression folders (else frame PNGs)."""
    for set_dir in sorted(pred_dir.glob("anno_*")):
        if not set_dir.is_dir():
            continue
        for video_dir in sorted(set_dir.iterdir()):
            if not video_dir.is_dir():
                continue
            for entry in sorted(video_dir.iterdir()):
                return entry.is_dir()
    return False


def _missing_error(missing: list[Path]) -> FlowRVSError:
    first = missing[0]
    folder = first.parent
    what = f"prediction folder {folder}" if not folder.is_dir() else f"prediction {first}"
    more = f" ({len(missing)} frames missing in all)" if len(missing) > 1 else ""
    return FlowRVSError(f"missing {what}{more}; pass --allow-missing to score missing frames as empty")


def score_davis_split(dataset, pred_dir, *, allow_missing: bool = False, progress: bool | None = None) -> dict:
    """Ref-DAVIS17: the DAVIS-2017 toolkit's unsupervised task on each annotator set, sets averaged.

    ``dataset`` is a :class:`~flowrvs.data.davis.RefDAVISDataset` (or a :class:`SubsetDataset` of
    one). The ``i``-th annotator set (``dataset.annotator_labels()`` order) is one toolkit run over
    every video of ``dataset``, read from ``pred_dir/anno_<i>/``, in either layout:

    * the toolkit's: ``anno_<i>/<video>/<frame>.png``, one indexed PNG per frame whose pixel value
      ``k > 0`` is object proposal ``k`` (``flowrvs evaluate`` writes it to ``OUT/official``; an
      ``OUT`` folder holding ``official/`` may be given as ``pred_dir``);
    * per expression: ``anno_<i>/<video>/<exp_id>/<frame>.png`` (nonzero = foreground, what
      ``flowrvs evaluate`` writes to ``OUT/predictions``), painted into the toolkit's frames with
      :func:`davis_paint_order` exactly as ``flowrvs evaluate`` writes ``OUT/official``.

    The ground truth is the dataset's annotation PNGs (255 = void). Each video is scored by
    :func:`flowrvs.eval.davis.match_video`; a set's numbers are the means over all objects of
    all its videos (:func:`flowrvs.eval.davis.summarize`), the top-level numbers the means over
    the sets. Returns ``{"J", "F", "J&F", "J-Recall", "J-Decay", "F-Recall", "F-Decay",
    "num_videos", "num_objects", "num_expressions", "missing_frames", "annotator_sets": [{"index",
    "label", "dir", <the same numbers>, "num_expressions", "num_objects", "missing_frames",
    "per_object": {"<video>_<object>": {<the numbers>, "video", "object", "proposal"}}}]}``.
    """
    from tqdm import tqdm

    from flowrvs.eval.davis import STAT_KEYS, match_video, object_record, split_annotation, split_proposals, summarize

    pred_dir = Path(pred_dir)
    split = getattr(dataset, "split", "?")
    if not dataset.has_masks:
        raise FlowRVSError(f"split {split} has no masks; cannot score it")
    if not pred_dir.is_dir():
        raise FlowRVSError(f"prediction folder {pred_dir} does not exist")
    sets = davis_sets(dataset)
    if not sets:
        raise FlowRVSError(f"Ref-DAVIS17 split {split} has no expressions")
    if (pred_dir / "official").is_dir() and not any((pred_dir / davis_set_dir(i)).is_dir() for i, _, _ in sets):
        pred_dir = pred_dir / "official"  # an `flowrvs evaluate` output folder
    per_expression = _davis_per_expression_layout(pred_dir)
    videos = dataset.videos()
    painted = {(i, video): davis_paint_order([e for e in dataset.expressions(video) if e.key in members])
               for i, _, members in sets for video in videos} if per_expression else {}

    def frame_paths(i: int, video: str, name: str) -> list[tuple[int, Path]]:
        """``(value, path)`` of the PNGs making frame ``name`` (one, value 0, in the toolkit's layout)."""
        folder = pred_dir / davis_set_dir(i) / video
        if not per_expression:
            return [(0, folder / f"{name}.png")]
        return [(value, folder / e.exp_id / f"{name}.png") for value, e in painted[i, video]]

    missing: dict[int, list[Path]] = {i: [] for i, _, _ in sets}
    for i, _, _ in sets:
        for video in videos:
            for name in dataset.frame_names(video):
                missing[i].extend(path for _, path in frame_paths(i, video, name) if not path.is_file())
    all_missing = [path for paths in missing.values() for path in paths]
    if all_missing and not allow_missing:
        raise _missing_error(all_missing)

    if progress is None:
        progress = sys.stderr.isatty()
    records: dict[int, dict[str, dict]] = {i: {} for i, _, _ in sets}
    for video in tqdm(videos, desc="scoring", unit="video", disable=not progress):
        frames = dataset.frame_names(video)
        annotation = dataset.load_annotation(video)
        gt, void = split_annotation(annotation)
        shape = annotation.shape[1:]
        for i, _, _ in sets:
            result = np.zeros(annotation.shape, dtype=np.uint8 if per_expression else np.int64)
            for t, name in enumerate(frames):
                paths = frame_paths(i, video, name)
                if per_expression:
                    result[t] = davis_index_frame(paths, shape, allow_missing=True)[0]  # missing: checked above
                    continue
                path = paths[0][1]
                if allow_missing and not path.is_file():
                    continue  # counted above, scored as empty
                frame = read_davis_result(path)
                if frame.shape != shape:
                    raise _size_error(path, frame.shape, shape)
                result[t] = frame
            try:
                proposals = split_proposals(result)
            except ValueError as err:
                raise FlowRVSError(f"predictions {pred_dir / davis_set_dir(i) / video}: {err}") from None
            match = match_video(gt, proposals, void)
            for k in range(gt.shape[0]):
                records[i][f"{video}_{k + 1}"] = {**object_record(match.j[k], match.f[k]), "video": video,
                                                  "object": k + 1, "proposal": int(match.proposal[k])}

    n_objects = len(next(iter(records.values())))
    if n_objects == 0:
        raise FlowRVSError(f"Ref-DAVIS17 split {split}: no ground-truth object in the first frame of any video")
    out_sets = []
    for i, label, members in sets:
        out_sets.append({"index": i, "label": label, "dir": davis_set_dir(i), **summarize(records[i].values()),
                         "num_expressions": len(members), "num_objects": len(records[i]),
                         "missing_frames": len(missing[i]), "per_object": records[i]})
    top = {key: float(np.mean([s[key] for s in out_sets])) for key in STAT_KEYS}
    top["J&F"] = (top["J"] + top["F"]) / 2
    return {
        **top,
        "num_videos": len(videos),
        "num_objects": n_objects,
        "num_expressions": sum(len(m) for _, _, m in sets),
        "missing_frames": len(all_missing),
        "annotator_sets": out_sets,
    }


def score_davis(dataset, pred_dir, *, allow_missing: bool = False, progress: bool | None = None) -> dict:
    """Score Ref-DAVIS17 predictions in ``pred_dir/anno_<i>/...``; see :func:`score_davis_split`."""
    return score_davis_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress)


#: dataset name -> scorer(dataset, pred_dir, *, allow_missing, progress) -> metrics dict.
SCORERS: dict[str, Callable[..., dict]] = {"mevis": score_mevis, "ytvos": score_ytvos, "davis": score_davis}


def score_dataset(name: str, dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                  progress: bool | None = None) -> dict:
    """Score ``pred_dir`` against ``dataset`` (opened by the caller, e.g. with
    :func:`flowrvs.data.open_dataset`) with the scorer of benchmark ``name``."""
    scorer = SCORERS.get(name.lower())
    if scorer is None:
        raise FlowRVSError(f"cannot score dataset {name!r}; supported: {', '.join(SCORERS)}")
    return scorer(dataset, pred_dir, allow_missing=allow_missing, progress=progress)


def write_metrics(metrics: dict, out_dir) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.csv`` into ``out_dir`` atomically.

    The CSV has one row per expression, or for Ref-DAVIS17 (no ``per_expression``) one row per
    annotator set and ground-truth object, with its recall and decay too.
    """
    out_dir = Path(out_dir)
    json_path = out_dir / "metrics.json"
    csv_path = out_dir / "metrics.csv"
    write_json(json_path, metrics, indent=2)
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if "per_expression" in metrics:
                writer.writerow(["key", "video", "exp_id", "J", "F", "J&F"])
                for key, r in metrics["per_expression"].items():
                    writer.writerow([key, r["video"], r["exp_id"], repr(r["J"]), repr(r["F"]), repr(r["J&F"])])
            else:
                from flowrvs.eval.davis import STAT_KEYS

                writer.writerow(["annotator", "key", "video", "object", "proposal", *STAT_KEYS])
                for s in metrics["annotator_sets"]:
                    for key, r in s["per_object"].items():
                        writer.writerow([s["label"], key, r["video"], r["object"], r["proposal"],
                                         *(repr(r[k]) for k in STAT_KEYS)])
    return json_path, csv_path


def summary_line(metrics: dict) -> str:
    """``J&F 0.xxxx  J 0.xxxx  F 0.xxxx``."""
    return f"J&F {metrics['J&F']:.4f}  J {metrics['J']:.4f}  F {metrics['F']:.4f}"
