"""Ref-DAVIS17 reader: DAVIS 2017 with the Khoreva et al. text annotations, converted to the YTVOS layout.

Layout accepted (what the public ``convert_davis_to_ytvos`` conversion produces)::

    <root>/meta_expressions/<split>/meta_expressions.json
        {"videos": {<vid>: {"expressions": {<exp_id>: {"exp": <sentence>, "obj_id": "1", ...}},
                            "frames": ["00000", "00001", ...]}}}
    <root>/<split>/JPEGImages/<vid>/<frame>.jpg
    <root>/<split>/Annotations/<vid>/<frame>.png      (indexed PNGs, pixel value = object id)

``split`` is normally ``valid`` (30 videos; ``train`` works the same way).

Annotator sets. Every object has four sentences: annotator 1 / annotator 2, each written
once from the first frame only and once from the full video; the official protocol scores
each of the four sets separately and averages. The set of an expression is, in this order:

1. an explicit ``"annotator"`` field of the expression (any JSON scalar, e.g. ``0``-``3`` or
   ``"annot1_first"``), else an ``"anno_set"`` field;
2. otherwise ``int(exp_id) % 4`` when ``exp_id`` is a decimal integer (the conversion numbers
   expressions per video as obj1: annot1-first, annot1-full, annot2-first, annot2-full, obj2: ...);
3. otherwise the expression's position in the video's JSON ``expressions`` object, modulo 4.

Integer labels from rules 2 and 3 are 0 = annotator 1 first-frame, 1 = annotator 1 full-video,
2 = annotator 2 first-frame, 3 = annotator 2 full-video.

Scoring (:func:`flowrvs.eval.benchmark.score_davis_split`) follows the DAVIS-2017 toolkit's unsupervised
task per annotator set (:mod:`flowrvs.eval.davis`); it reads the raw annotation values, void
(255) included, through :meth:`RefDAVISDataset.load_annotation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowrvs.data.base import Expression
from flowrvs.data.ytvos import RefYouTubeVOSDataset, read_index_png, stack_frames

ANNOTATOR_NAMES = {0: "annot1_first_frame", 1: "annot1_full_video", 2: "annot2_first_frame", 3: "annot2_full_video"}


class RefDAVISDataset(RefYouTubeVOSDataset):
    """One split of Ref-DAVIS17 in the YTVOS layout; adds annotator sets."""

    def __init__(self, root: str | Path, split: str = "valid"):
        super().__init__(root, split, official_valid=False)
        self._annotator: dict[str, object] = {}
        for vid in self._videos:
            for pos, e in enumerate(self._expressions[vid]):
                extra = self._extra[(vid, e.exp_id)]
                if extra.get("annotator") is not None:
                    label = extra["annotator"]
                elif extra.get("anno_set") is not None:
                    label = extra["anno_set"]
                elif e.exp_id.strip().isdigit():
                    label = int(e.exp_id) % 4
                else:
                    label = pos % 4
                self._annotator[e.key] = label

    def load_annotation(self, video: str) -> np.ndarray:
        """``(T, H, W)`` raw annotation values of every frame of ``video``: object ids, 0 background,
        255 void (what the DAVIS toolkit reads). A frame without its annotation PNG is an error."""
        names = self.frame_names(video)
        paths = [self.mask_path(video, n) for n in names]
        return stack_frames([read_index_png(p) for p in paths], paths)

    def annotator(self, expression: Expression | str):
        """The annotator-set label of an expression (or of its key ``<video>_<exp_id>``)."""
        key = expression.key if isinstance(expression, Expression) else expression
        return self._annotator[key]

    def annotator_labels(self) -> list:
        """The distinct annotator-set labels, sorted (integers before strings)."""
        return sorted(set(self._annotator.values()), key=lambda v: (not isinstance(v, int), str(v) if not isinstance(v, int) else v))

    def annotator_sets(self) -> list[set[str]]:
        """One set of expression keys (``<video>_<exp_id>``) per annotator label, in ``annotator_labels()`` order.

        Score each set as its own benchmark run and average the scores.
        """
        labels = self.annotator_labels()
        sets: list[set[str]] = [set() for _ in labels]
        index = {lab: i for i, lab in enumerate(labels)}
        for key, lab in self._annotator.items():
            sets[index[lab]].add(key)
        return sets
