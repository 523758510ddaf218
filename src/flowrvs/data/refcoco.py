"""RefCOCO / RefCOCO+ / RefCOCOg images as ``T``-frame pseudo-videos.

Layouts accepted (``<root>`` is the COCO folder; ``<dataset>`` is ``refcoco``, ``refcoco+`` or
``refcocog``; ``<split>`` e.g. ``train``, ``val``, ``testA``, ``testB``, ``test``)::

    <root>/train2014/COCO_train2014_<image_id:012d>.jpg      (or image_dir=...)

and ONE of

A. ``<root>/<dataset>/instances_<split>.json`` in COCO format -- ``"images"``:
   ``[{"id", "file_name", "height", "width"}]``, ``"annotations"``:
   ``[{"id", "image_id", "segmentation", "bbox", "category_id"}]`` with ``segmentation`` a list
   of polygons or an RLE (compressed or uncompressed) -- and the referring sentences either in a
   ``"refs"`` list inside the same JSON or in ``<root>/<dataset>/refs_<split>.json``, as
   ``[{"ref_id"?, "ann_id", "image_id", "sentences": [{"sent": ...}], "split"?}]``. Refs whose
   ``"split"`` differs from ``split`` are skipped (so a refs file of all splits works too).
   A sentence may also be ``{"raw": ...}`` or a plain string.

B. ``<root>/<dataset>/instances_<dataset>_<split>.json``, the widely used MDETR/ReferFormer
   conversion where every ``"images"`` entry is one sentence (``"caption"``, with
   ``"original_id"`` the COCO image id) and its ``"annotations"`` are the referred object.

Pseudo-videos: one per referred object (format A: per ref; format B: per sentence entry); its
sentences are its expressions (``exp_id`` = sentence index). The ``T`` frames are the image
under a smooth random sequence of affine (scale, rotation, translation), mild perspective and
photometric (brightness, contrast, hue) transforms, interpolated with a smoothstep between a
random start and end state; the mask goes through the same geometry (nearest neighbour).
Everything is deterministic given ``seed``, the epoch (:meth:`set_epoch`, default 0) and the
video id. Frame names are ``00000 .. T-1``. Nothing on disk is written.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from flowrvs.data.base import Clip, Expression, ReferringVideoDataset
from flowrvs.data.ytvos import image_size, read_json, read_rgb
from flowrvs.errors import FlowRVSError
from flowrvs.io.names import check_name
from flowrvs.io.masks import decode_rle

DATASETS = ("refcoco", "refcoco+", "refcocog")


# --- pseudo-video synthesis -------------------------------------------------------------------
def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def random_warp_sequence(h: int, w: int, T: int, rng: np.random.Generator, strength: float = 1.0):
    """``T`` smooth ``3x3`` homographies and ``(T, 3)`` photometric params (brightness, contrast, hue shift).

    Start and end states are drawn independently and joined by a smoothstep in time.
    ``strength`` scales every range (0 = identity).
    """
    s = float(strength)

    def state():
        return {
            "log_scale": rng.uniform(-0.15, 0.15) * s,
            "angle": rng.uniform(-10.0, 10.0) * s,  # degrees
            "tx": rng.uniform(-0.08, 0.08) * s * w,
            "ty": rng.uniform(-0.08, 0.08) * s * h,
            "corners": rng.uniform(-0.04, 0.04, size=(4, 2)) * s * np.array([w, h]),
            "bright": rng.uniform(-20.0, 20.0) * s,
            "contrast": rng.uniform(-0.15, 0.15) * s,
            "hue": rng.uniform(-6.0, 6.0) * s,  # OpenCV hue units (180 = full turn)
        }

    a, b = state(), state()
    ts = _smoothstep(np.linspace(0.0, 1.0, T)) if T > 1 else np.zeros(1)
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    homs, photo = [], []
    for t in ts:
        p = {k: a[k] + (b[k] - a[k]) * t for k in a}
        aff = np.eye(3)
        aff[:2] = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(p["angle"]), float(np.exp(p["log_scale"])))
        aff[0, 2] += p["tx"]
        aff[1, 2] += p["ty"]
        persp = cv2.getPerspectiveTransform(src, (src + p["corners"]).astype(np.float32))
        homs.append(persp @ aff)
        photo.append((p["bright"], 1.0 + p["contrast"], p["hue"]))
    return homs, np.asarray(photo, dtype=np.float64)


def _photometric(frame: np.ndarray, bright: float, contrast: float, hue: float) -> np.ndarray:
    out = frame
    if abs(hue) >= 0.5:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(round(hue))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out = (out.astype(np.float32) - 128.0) * contrast + 128.0 + bright
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def warp_frames(image: np.ndarray, homs, photo: np.ndarray, indices) -> np.ndarray:
    """Apply the geometric + photometric transforms ``indices`` to an ``(H, W, 3)`` uint8 image."""
    h, w = image.shape[:2]
    out = np.empty((len(indices), h, w, 3), dtype=np.uint8)
    for j, t in enumerate(indices):
        warped = cv2.warpPerspective(
            image, homs[t], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        out[j] = _photometric(warped, *photo[t])
    return out


def warp_mask(mask: np.ndarray, homs, indices) -> np.ndarray:
    """Apply the geometric transforms ``indices`` to an ``(H, W)`` bool mask (nearest neighbour)."""
    h, w = mask.shape
    m = mask.astype(np.uint8)
    out = np.empty((len(indices), h, w), dtype=bool)
    for j, t in enumerate(indices):
        out[j] = cv2.warpPerspective(m, homs[t], (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return out


def decode_segmentation(seg, h: int, w: int, where: str = "") -> np.ndarray:
    """COCO ``segmentation`` (polygon list, uncompressed or compressed RLE) -> ``(h, w)`` bool mask."""
    try:
        with warnings.catch_warnings():
            # pycocotools' RLE objects predate NumPy 2's copy keyword; the warning is harmless
            warnings.filterwarnings("ignore", message=".*__array__ implementation.*", category=DeprecationWarning)
            m = _decode(seg, h, w)
    except (TypeError, ValueError, KeyError) as exc:
        raise FlowRVSError(f"{where}: cannot decode segmentation: {exc}") from exc
    if m.shape != (h, w):
        raise FlowRVSError(f"{where}: segmentation is {m.shape[0]}x{m.shape[1]}, image is {h}x{w}")
    return m


def _decode(seg, h: int, w: int) -> np.ndarray:
    if isinstance(seg, dict):
        return decode_rle(seg)
    if isinstance(seg, list):
        # pycocotools reads a 4-number entry as a box, so drop degenerate (< 3 point) polygons
        polys = [list(map(float, p)) for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((h, w), dtype=bool)
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)
    raise TypeError(f"unsupported segmentation type {type(seg).__name__}")


# --- the reader -------------------------------------------------------------------------------
class RefCOCODataset(ReferringVideoDataset):
    """Referring-image data as ``num_frames``-frame pseudo-videos (layouts in the module docstring)."""

    has_masks = True

    def __init__(
        self,
        root: str | Path,
        dataset: str = "refcoco",
        split: str = "train",
        num_frames: int = 5,
        seed: int = 0,
        image_dir: str | Path | None = None,
        strength: float = 1.0,
    ):
        if dataset not in DATASETS:
            raise FlowRVSError(f"unknown referring dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
        if int(num_frames) <= 0:
            raise FlowRVSError(f"num_frames must be positive, got {num_frames}")
        self.root = Path(root)
        self.dataset = dataset
        self.split = split
        self.num_frames = int(num_frames)
        self.seed = int(seed)
        self.strength = float(strength)
        self.epoch = 0
        self.image_dir = Path(image_dir) if image_dir is not None else self.root / "train2014"
        # video -> {"file", "h", "w", "segs": [segmentation...], "ann_ids": (...)}
        self._videos: dict[str, dict] = {}
        self._expressions: dict[str, list[Expression]] = {}

        folder = self.root / dataset
        plain = folder / f"instances_{split}.json"
        converted = folder / f"instances_{dataset}_{split}.json"
        if plain.is_file():
            self._load_refs_format(plain, folder / f"refs_{split}.json")
        elif converted.is_file():
            self._load_caption_format(converted)
        else:
            raise FlowRVSError(f"no annotations for {dataset} {split}: neither {plain} nor {converted} exists")
        self._names = sorted(self._videos)
        self._all: list[Expression] | None = None

    # -- loading -------------------------------------------------------------------------------
    def _image_record(self, img: dict | None, image_id) -> dict:
        if img is None:
            return {"file": self.image_dir / f"COCO_train2014_{int(image_id):012d}.jpg", "h": None, "w": None}
        name = img.get("file_name") or f"COCO_train2014_{int(image_id):012d}.jpg"
        check_name(str(name), f"the RefCOCO annotations under {self.root}", "file_name")
        h, w = img.get("height"), img.get("width")
        return {"file": self.image_dir / name, "h": None if h is None else int(h), "w": None if w is None else int(w)}

    def _load_refs_format(self, inst_path: Path, refs_path: Path) -> None:
        inst = read_json(inst_path)
        if not isinstance(inst, dict):
            raise FlowRVSError(f"{inst_path}: expected a COCO-format object")
        if "refs" in inst:
            refs, src = inst["refs"], inst_path
        elif refs_path.is_file():
            refs, src = read_json(refs_path), refs_path
        else:
            raise FlowRVSError(f"{inst_path} has no 'refs' list and {refs_path} does not exist")
        if not isinstance(refs, list):
            raise FlowRVSError(f"{src}: refs must be a list")
        images = {img["id"]: img for img in inst.get("images", [])}
        anns = {a["id"]: a for a in inst.get("annotations", [])}
        for pos, ref in enumerate(refs):
            if "split" in ref and ref["split"] != self.split:
                continue
            where = f"{src} ref #{pos}"
            ann_ids = ref.get("ann_ids", [ref.get("ann_id")])
            if not isinstance(ann_ids, list):
                ann_ids = [ann_ids]
            segs = []
            for aid in ann_ids:
                if aid not in anns:
                    raise FlowRVSError(f"{where}: annotation id {aid!r} is not in {inst_path}")
                segs.append(anns[aid]["segmentation"])
            image_id = ref.get("image_id", anns[ann_ids[0]].get("image_id"))
            vid = f"{image_id}_{ref.get('ref_id', pos)}"
            rec = self._image_record(images.get(image_id), image_id)
            rec.update(segs=segs, ann_ids=tuple(ann_ids), where=where)
            sentences = [self._sentence(s, where) for s in ref.get("sentences", [])]
            self._add(vid, rec, sentences)

    def _load_caption_format(self, path: Path) -> None:
        inst = read_json(path)
        if not isinstance(inst, dict):
            raise FlowRVSError(f"{path}: expected a COCO-format object")
        by_image: dict = {}
        for a in inst.get("annotations", []):
            by_image.setdefault(a["image_id"], []).append(a)
        for img in inst.get("images", []):
            where = f"{path} image {img.get('id')}"
            if "caption" not in img:
                raise FlowRVSError(f"{where}: no 'caption' (expected the MDETR/ReferFormer converted format)")
            anns = by_image.get(img["id"], [])
            rec = self._image_record(img, img.get("original_id", img["id"]))
            rec.update(segs=[a["segmentation"] for a in anns], ann_ids=tuple(a.get("original_id", a["id"]) for a in anns), where=where)
            self._add(str(img["id"]), rec, [str(img["caption"])])

    @staticmethod
    def _sentence(s, where: str) -> str:
        if isinstance(s, str):
            return s
        if isinstance(s, dict):
            for k in ("sent", "raw"):
                if k in s:
                    return str(s[k])
        raise FlowRVSError(f"{where}: sentence {s!r} has no 'sent'")

    def _add(self, vid: str, rec: dict, sentences: list[str]) -> None:
        if not sentences:
            return
        if vid in self._videos:
            raise FlowRVSError(f"{rec['where']}: duplicate referred object id {vid}")
        self._videos[vid] = rec
        self._expressions[vid] = [
            Expression(video=vid, exp_id=str(i), sentence=s, obj_ids=rec["ann_ids"], anno_ids=rec["ann_ids"])
            for i, s in enumerate(sentences)
        ]

    # -- pseudo-video ----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Change the random transforms (epoch 0 is the default)."""
        self.epoch = int(epoch)

    def _rec(self, video: str) -> dict:
        try:
            return self._videos[video]
        except KeyError as err:
            raise FlowRVSError(f"{video!r} is not a referred object of {self.dataset} {self.split}") from err

    def _size(self, rec: dict) -> tuple[int, int]:
        if rec["h"] is None or rec["w"] is None:
            rec["h"], rec["w"] = image_size(rec["file"])
        return rec["h"], rec["w"]

    def _warps(self, video: str, h: int, w: int):
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(video.encode("utf-8"))])
        return random_warp_sequence(h, w, self.num_frames, rng, self.strength)

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_frames))
        out = [int(i) for i in indices]
        for i in out:
            if not 0 <= i < self.num_frames:
                raise FlowRVSError(f"frame index {i} out of range for a {self.num_frames}-frame pseudo-video")
        return out

    # -- interface -------------------------------------------------------------------------------
    def videos(self) -> list[str]:
        return list(self._names)

    def frame_names(self, video: str) -> list[str]:
        self._rec(video)
        return [f"{t:05d}" for t in range(self.num_frames)]

    def expressions(self, video: str) -> list[Expression]:
        self._rec(video)
        return list(self._expressions[video])

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        rec = self._rec(video)
        image = read_rgb(rec["file"])
        h, w = image.shape[:2]
        if rec["h"] is not None and (rec["h"], rec["w"]) != (h, w):
            raise FlowRVSError(f"{rec['file']} is {h}x{w}, the annotations say {rec['h']}x{rec['w']}")
        homs, photo = self._warps(video, h, w)
        return warp_frames(image, homs, photo, self._indices(indices))

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray:
        rec = self._rec(expression.video)
        h, w = self._size(rec)
        mask = np.zeros((h, w), dtype=bool)
        for seg in rec["segs"]:
            mask |= decode_segmentation(seg, h, w, rec["where"])
        homs, _ = self._warps(expression.video, h, w)
        return warp_mask(mask, homs, self._indices(indices))

    # -- convenience -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(v) for v in self._expressions.values())

    def __getitem__(self, index: int) -> Clip:
        """The full pseudo-video clip of expression ``index`` (in ``all_expressions()`` order)."""
        if self._all is None:
            self._all = self.all_expressions()
        exp = self._all[int(index)]
        return Clip(
            frames=self.load_frames(exp.video),
            mask=self.load_mask(exp),
            sentence=exp.sentence,
            video=exp.video,
            exp_id=exp.exp_id,
            frame_names=self.frame_names(exp.video),
        )
