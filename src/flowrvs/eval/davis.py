"""The DAVIS-2017 evaluation toolkit's *unsupervised* protocol, the one Ref-DAVIS17 is scored with.

In that protocol a result is not tied to an object: every frame of a video is one indexed PNG in
which pixel value ``k > 0`` marks object proposal ``k``, and the scorer itself decides which
proposal stands for which ground-truth object. What it does for one video, and what this module
reproduces (our own code, checked against the toolkit's definitions):

* **Ground truth** (:func:`split_annotation`): the DAVIS annotation PNGs, pixel value ``k`` =
  object ``k`` and 255 = *void* (pixels nobody could label). Void pixels are set aside; the
  objects are ``1 .. K`` with ``K`` the largest object value in the *first* frame (an id that only
  shows up later is not an object of the video; an id up to ``K`` that never appears is an object
  with an empty mask).
* **Proposals** (:func:`split_proposals`): ``1 .. M`` with ``M`` the largest value in any frame of
  the result; more than :data:`MAX_PROPOSALS` (20) is an error. Fewer proposals than objects: the
  missing ones are empty masks.
* **Every pair** (:func:`pair_scores`): J and F (:mod:`flowrvs.eval.metrics`) of every (object,
  proposal) pair on *every* frame (the unsupervised task drops no frame; only the semi-supervised
  task skips the first and last), with the void pixels taken out of both masks first: for J they
  count in neither intersection nor union, for F the boundaries are drawn without them.
* **Matching** (:func:`match_video`): the pair's score is the mean over frames of J plus the mean
  over frames of F, halved; the one-to-one assignment of proposals to objects with the largest
  total (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`) gives every object
  its proposal. With proposals padded up to the number of objects every object is matched; one
  matched with a padding (empty) proposal scores as an empty prediction.
* **Per object** (:func:`statistics`): over its per-frame J (and likewise F) values: the *mean*
  (NaN-ignoring), the *recall* (fraction of frames above 0.5) and the *decay* (mean over the
  first quarter of the frames minus mean over the last quarter; see :func:`decay_bounds` for how
  the quarters are cut: they overlap by one frame at their edges and are not equal chunks).
* **One run** (:func:`summarize`): J = mean over all objects of all videos of their J mean,
  F likewise, J&F = (J + F) / 2; recall and decay are averaged over objects the same way.

Ref-DAVIS17 has several annotator sets (each annotator described every object once): every set is
one toolkit run (:func:`score_video` on each video's stack of result frames, then
:func:`summarize`), and the reported numbers are the means over the sets (:func:`average_sets`).
Everything here takes arrays; reading PNGs and walking a dataset is :mod:`flowrvs.eval.benchmark`.

The toolkit names an object ``<video>_<k>``. Note that its per-object table lists the matched pairs
in proposal order, so after a swap its label ``<video>_1`` may carry the numbers of object 2;
here every object is listed under its own id (and the proposal it was matched with). The means,
the numbers that are reported, are the same either way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from flowrvs.eval.metrics import contour_accuracy, region_similarity

__all__ = [
    "MAX_PROPOSALS",
    "VOID",
    "split_annotation",
    "split_proposals",
    "pair_scores",
    "VideoMatch",
    "match_video",
    "decay_bounds",
    "statistics",
    "object_record",
    "summarize",
    "score_video",
    "average_sets",
    "STAT_KEYS",
]

#: Most object proposals the toolkit accepts in one video (largest pixel value of a result PNG).
MAX_PROPOSALS = 20
#: Annotation value of void pixels.
VOID = 255
#: The per-object / per-run numbers: means "J" and "F", their average "J&F", recalls and decays.
STAT_KEYS = ("J", "F", "J&F", "J-Recall", "J-Decay", "F-Recall", "F-Decay")


def split_annotation(annotation) -> tuple[np.ndarray, np.ndarray]:
    """``(T, H, W)`` integer annotation -> ``(objects (K, T, H, W) bool, void (T, H, W) bool)``.

    ``K`` is the largest non-void value of the first frame; object ``k`` (``objects[k - 1]``) is
    where the annotation equals ``k``. Void (255) pixels belong to no object.
    """
    ann = np.asarray(annotation)
    if ann.ndim != 3:
        raise ValueError(f"annotation must be (T, H, W), got shape {ann.shape}")
    void = ann == VOID
    labels = np.where(void, 0, ann)
    k = int(labels[0].max()) if labels.shape[0] and labels[0].size else 0
    objects = np.stack([labels == i for i in range(1, k + 1)]) if k else np.zeros((0, *ann.shape), bool)
    return objects, void


def split_proposals(index) -> np.ndarray:
    """``(T, H, W)`` integer result -> ``(M, T, H, W)`` bool proposals, ``M`` its largest value.

    ValueError when ``M`` exceeds :data:`MAX_PROPOSALS` (the toolkit stops there too).
    """
    idx = np.asarray(index)
    if idx.ndim != 3:
        raise ValueError(f"result must be (T, H, W), got shape {idx.shape}")
    m = int(idx.max()) if idx.size else 0
    if m > MAX_PROPOSALS:
        raise ValueError(f"pixel value {m} found; at most {MAX_PROPOSALS} object proposals (values 1..{MAX_PROPOSALS})")
    if idx.size and int(idx.min()) < 0:
        raise ValueError(f"negative pixel value {int(idx.min())} in the result")
    return np.stack([idx == i for i in range(1, m + 1)]) if m else np.zeros((0, *idx.shape), bool)


def _check_stacks(gt, proposals, void) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    gt, proposals = np.asarray(gt), np.asarray(proposals)
    if gt.ndim != 4 or proposals.ndim != 4:
        raise ValueError(f"objects and proposals must be (N, T, H, W) and (M, T, H, W), got {gt.shape} and "
                         f"{proposals.shape}")
    if gt.shape[1:] != proposals.shape[1:]:
        raise ValueError(f"objects are {gt.shape[1:]} (T, H, W) but proposals {proposals.shape[1:]}")
    if void is not None:
        void = np.asarray(void)
        if void.shape != gt.shape[1:]:
            raise ValueError(f"void is {void.shape} but the objects are {gt.shape[1:]} (T, H, W)")
    return gt, proposals, void


def pair_scores(gt, proposals, void=None, *, bound_th: float = 0.008) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of every (proposal, object) pair: two ``(max(M, N), N, T)`` arrays.

    Rows are the proposals, padded with empty ones up to the number of objects ``N``; columns the
    objects. Void pixels are taken out of every mask once, up front (the same as passing ``void``
    to :func:`~flowrvs.eval.metrics.region_similarity` / :func:`~flowrvs.eval.metrics.contour_accuracy` for
    each pair). All pairs of an empty proposal with one object score alike: computed once.
    """
    gt, proposals, void = _check_stacks(gt, proposals, void)
    keep = None if void is None or not void.any() else ~void.astype(bool)
    n, t = gt.shape[:2]
    rows = max(proposals.shape[0], n)
    j = np.zeros((rows, n, t))
    f = np.zeros((rows, n, t))
    objects = [gt[col] != 0 if keep is None else (gt[col] != 0) & keep for col in range(n)]
    empty = np.zeros(gt.shape[1:], dtype=bool)
    empty_scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for row in range(rows):
        pred = empty
        if row < proposals.shape[0]:
            pred = proposals[row] != 0 if keep is None else (proposals[row] != 0) & keep
        blank = not pred.any()
        for col in range(n):
            if blank and col in empty_scores:
                j[row, col], f[row, col] = empty_scores[col]
                continue
            j[row, col] = region_similarity(pred, objects[col])
            f[row, col] = contour_accuracy(pred, objects[col], bound_th)
            if blank:
                empty_scores[col] = (j[row, col], f[row, col])
    return j, f


@dataclass
class VideoMatch:
    """One video's result after matching.

    ``j``/``f``: ``(N, T)`` per-frame J and F of each object (row ``k - 1`` = object ``k``) against
    its proposal; ``proposal``: ``(N,)`` the pixel value of the proposal each object was matched
    with, 0 for a padding (empty) proposal when there were fewer proposals than objects.
    """

    j: np.ndarray
    f: np.ndarray
    proposal: np.ndarray


def match_video(gt, proposals, void=None, *, bound_th: float = 0.008) -> VideoMatch:
    """Score one video as the toolkit's unsupervised task does (see the module docstring).

    ``gt``: ``(N, T, H, W)`` object masks; ``proposals``: ``(M, T, H, W)``; ``void``: ``(T, H, W)``
    or None. Any dtype, nonzero = foreground.
    """
    from scipy.optimize import linear_sum_assignment

    j, f = pair_scores(gt, proposals, void, bound_th=bound_th)
    n_prop = np.asarray(proposals).shape[0]
    n, t = j.shape[1:]
    cost = (j.mean(axis=2) + f.mean(axis=2)) / 2
    rows, cols = linear_sum_assignment(-cost)  # rows >= columns: every object gets one row
    order = np.argsort(cols)  # scipy lists the pairs by row (proposal); list them by object
    rows, cols = rows[order], cols[order]
    proposal = np.where(rows < n_prop, rows + 1, 0)
    return VideoMatch(j=j[rows, cols].reshape(n, t), f=f[rows, cols].reshape(n, t), proposal=proposal)


def decay_bounds(n: int) -> tuple[slice, slice]:
    """The first and the last quarter of ``n`` frames, as the toolkit cuts them for the decay.

    The five quarter edges are the frame positions ``round_half_up(k * (n - 1) / 4)``,
    ``k = 0..4``; quarter ``k`` runs from edge ``k`` to edge ``k + 1`` *inclusive*, so neighbouring
    quarters share their edge frame. For 8 frames the edges are 0, 2, 4, 5, 7: the first quarter is
    frames 0-2 and the last frames 5-7.
    """
    if n < 1:
        raise ValueError("no frames")
    edges = [(k * (n - 1) + 2) // 4 for k in range(5)]  # floor(k(n-1)/4 + 1/2), exact in integers
    return slice(edges[0], edges[1] + 1), slice(edges[3], edges[4] + 1)


def statistics(values) -> tuple[float, float, float]:
    """``(mean, recall, decay)`` of one object's per-frame J (or F) values.

    mean: NaN-ignoring mean; recall: fraction of all frames whose value is above 0.5 (a NaN frame
    counts as not recalled); decay: mean of the first quarter minus mean of the last quarter
    (:func:`decay_bounds`), NaN-ignoring.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"expected a non-empty 1-D array of per-frame values, got shape {v.shape}")
    first, last = decay_bounds(v.size)
    with warnings.catch_warnings():  # an all-NaN stretch gives NaN, without "mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(v))
        recall = float(np.mean(v > 0.5))
        decay = float(np.nanmean(v[first]) - np.nanmean(v[last]))
    return mean, recall, decay


def object_record(j_frames, f_frames) -> dict:
    """The :data:`STAT_KEYS` numbers of one object from its per-frame J and F (``"J&F"`` = (J + F) / 2)."""
    jm, jr, jd = statistics(j_frames)
    fm, fr, fd = statistics(f_frames)
    return {"J": jm, "F": fm, "J&F": (jm + fm) / 2, "J-Recall": jr, "J-Decay": jd, "F-Recall": fr, "F-Decay": fd}


def summarize(records) -> dict:
    """One run's numbers from its objects' records (:func:`object_record`): every :data:`STAT_KEYS`
    number but ``"J&F"`` is the mean over all objects; ``"J&F"`` = (J + F) / 2. ValueError on no objects."""
    records = list(records)
    if not records:
        raise ValueError("no ground-truth objects to summarise")
    out = {key: float(np.mean([r[key] for r in records])) for key in STAT_KEYS if key != "J&F"}
    out["J&F"] = (out["J"] + out["F"]) / 2
    return {key: out[key] for key in STAT_KEYS}


def score_video(annotation, result, *, bound_th: float = 0.008) -> list[dict]:
    """One video of one run of the unsupervised task: a record per ground-truth object.

    ``annotation``: ``(T, H, W)`` integer ground truth (object ids, 255 = void, see
    :func:`split_annotation`); ``result``: ``(T, H, W)`` integer proposal ids of the same shape
    (:func:`split_proposals`; ValueError above :data:`MAX_PROPOSALS`). Returns, for objects
    ``1..K`` in order, :func:`object_record` plus ``"object"`` (its id) and ``"proposal"`` (the
    proposal it was matched with, 0 = none).
    """
    gt, void = split_annotation(annotation)
    if np.shape(result) != gt.shape[1:]:
        raise ValueError(f"result is {np.shape(result)} but the annotation {gt.shape[1:]} (T, H, W)")
    match = match_video(gt, split_proposals(result), void, bound_th=bound_th)
    return [{**object_record(match.j[k], match.f[k]), "object": k + 1, "proposal": int(match.proposal[k])}
            for k in range(gt.shape[0])]


def average_sets(runs) -> dict:
    """The reported numbers of several runs (annotator sets): each :data:`STAT_KEYS` number but
    ``"J&F"`` is the mean over the runs' :func:`summarize` dicts; ``"J&F"`` = (J + F) / 2."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to average")
    out = {key: float(np.mean([r[key] for r in runs])) for key in STAT_KEYS}
    out["J&F"] = (out["J"] + out["F"]) / 2
    return out
