"""The expressions of a scene: the predicates shared by the generator and :func:`resolve`,
the builders of each expression kind (appearance, motion, relation, multi), and :func:`resolve`,
which evaluates a sentence of the grammar against a video."""

from __future__ import annotations

import itertools
import re
from typing import Mapping

import numpy as np

from flowrvs.data.synth.video import SynthObject, SynthVideo
from flowrvs.data.synth.vocabulary import (
    COLOURS, EXPRESSION_KINDS, GENERIC_NOUNS, MOTION_CLAUSES, NUMBERS, RELATIONS, SHAPES, SIZES, TEXTURES, plural_of,
)

MIN_EXPRESSIONS, MAX_EXPRESSIONS = 2, 6
_ATTR_KEYS = ("size", "texture", "colour", "shape")


def _np_words(attrs: Mapping[str, str], generic: str, plural: bool = False) -> list[str]:
    words = [attrs[k] for k in ("size", "texture", "colour") if k in attrs]
    noun = attrs.get("shape", generic)
    words.append(plural_of(noun) if plural else noun)
    return words


def _matches(obj: SynthObject, attrs: Mapping[str, str]) -> bool:
    return all(obj.attribute(k) == v for k, v in attrs.items())


def _subsets(obj: SynthObject, allow_empty: bool = False) -> list[dict[str, str]]:
    out = []
    for n in range(0 if allow_empty else 1, len(_ATTR_KEYS) + 1):
        for keys in itertools.combinations(_ATTR_KEYS, n):
            out.append({k: obj.attribute(k) for k in keys})
    return out


def _pick_description(rng: np.random.Generator, valid: list[dict[str, str]]) -> dict[str, str]:
    """A random minimal description, or (30%) any valid one that does not needlessly say ``solid``."""
    smallest = min(len(a) for a in valid)
    pool = [a for a in valid if len(a) == smallest]
    if rng.random() < 0.3:
        extra = [a for a in valid if a.get("texture", "") != "solid"]
        if extra:
            pool = extra
    return pool[int(rng.integers(len(pool)))]


def _generic(rng: np.random.Generator) -> str:
    return GENERIC_NOUNS[int(rng.integers(len(GENERIC_NOUNS)))]


def _phrase(rng: np.random.Generator, attrs: Mapping[str, str], plural: bool = False) -> str:
    return " ".join(["the"] + _np_words(attrs, _generic(rng), plural))


class _Scene:
    """Predicates over a generated scene, shared by the generator and :func:`resolve`."""

    def __init__(self, objects: list[SynthObject], visible: np.ndarray):
        self.objects = objects
        self.present = visible.any(axis=(2, 3))  # (N, T)

    def select(self, attrs: Mapping[str, str]) -> set[int]:
        return {i for i, o in enumerate(self.objects) if _matches(o, attrs)}

    def unique_descriptions(self, i: int) -> list[dict[str, str]]:
        return [a for a in _subsets(self.objects[i]) if self.select(a) == {i}]

    def _offsets(self, i: int, j: int, rel: str) -> np.ndarray:
        """Signed distance by which ``i`` is ``rel`` of ``j`` in the frames showing both."""
        both = self.present[i] & self.present[j]
        ci, cj = self.objects[i].centers[both], self.objects[j].centers[both]
        if rel == "above":
            return cj[:, 0] - ci[:, 0]
        if rel == "below":
            return ci[:, 0] - cj[:, 0]
        if rel == "left of":
            return cj[:, 1] - ci[:, 1]
        return ci[:, 1] - cj[:, 1]

    def relation_holds(self, i: int, j: int, rel: str) -> bool:
        """``i`` is clearly ``rel`` of ``j`` in every frame showing both, and they share at least half the frames."""
        if i == j:
            return False
        d = self._offsets(i, j, rel)
        need = max(1, (self.present.shape[1] + 1) // 2)
        margin = 0.25 * (self.objects[i].side + self.objects[j].side)
        return d.size >= need and bool(np.all(d >= margin))

    def relation_touches(self, i: int, j: int, rel: str) -> bool:
        """``i`` is ``rel`` of ``j`` in at least one frame showing both (could be read as satisfying it)."""
        if i == j:
            return False
        d = self._offsets(i, j, rel)
        return bool(np.any(d > 0))


def _least_referred(rng: np.random.Generator, counts: list[int], exclude: set[int] = frozenset()) -> list[int]:
    """Object indices ordered by how rarely they have been referred to, ties in random order."""
    order = rng.permutation(len(counts))
    return sorted((int(i) for i in order if int(i) not in exclude), key=lambda i: counts[i])


def _appearance(rng, scene: _Scene, counts):
    for i in _least_referred(rng, counts)[:2]:
        valid = scene.unique_descriptions(i)
        if valid:
            return _phrase(rng, _pick_description(rng, valid)), (i,)
    return None


def _motion(rng, scene: _Scene, counts):
    for i in _least_referred(rng, counts):
        obj = scene.objects[i]
        tags = list(obj.tags)
        for k in rng.permutation(len(tags)):
            tag = tags[int(k)]
            movers = {j for j, o in enumerate(scene.objects) if tag in o.tags}
            valid = [a for a in _subsets(obj, allow_empty=True) if scene.select(a) & movers == {i}]
            if not valid:
                continue
            attrs = _pick_description(rng, valid)
            clauses = MOTION_CLAUSES[tag]
            return f"{_phrase(rng, attrs)} {clauses[int(rng.integers(len(clauses)))]}", (i,)
    return None


def _relation(rng, scene: _Scene, counts):
    n = len(scene.objects)
    for i in _least_referred(rng, counts):
        for j in (int(j) for j in rng.permutation(n)):
            if j == i:
                continue
            ref_valid = scene.unique_descriptions(j)
            if not ref_valid:
                continue
            for r in rng.permutation(len(RELATIONS)):
                rel = RELATIONS[int(r)]
                if not scene.relation_holds(i, j, rel):
                    continue
                touching = {k for k in range(n) if scene.relation_touches(k, j, rel)}
                valid = [a for a in _subsets(scene.objects[i], allow_empty=True) if scene.select(a) & touching == {i}]
                if not valid:
                    continue
                attrs = _pick_description(rng, valid)
                ref = _phrase(rng, _pick_description(rng, ref_valid))
                return f"{_phrase(rng, attrs)} {rel} {ref}", (i,)
    return None


def _multi(rng, scene: _Scene, counts):
    options = []
    seen = set()
    for obj in scene.objects:
        for attrs in _subsets(obj):
            key = tuple(sorted(attrs.items()))
            if key in seen:
                continue
            seen.add(key)
            members = scene.select(attrs)
            if len(members) in NUMBERS and (attrs.get("texture") != "solid" or len(attrs) == 1):
                options.append((attrs, members))
    if not options:
        return None
    smallest = min(len(a) for a, _ in options)
    pool = [o for o in options if len(o[0]) == smallest] if rng.random() < 0.7 else options
    attrs, members = pool[int(rng.integers(len(pool)))]
    words = ["the", NUMBERS[len(members)]] + _np_words(attrs, _generic(rng), plural=True)
    return " ".join(words), tuple(sorted(members))


_BUILDERS = {"appearance": _appearance, "motion": _motion, "relation": _relation, "multi": _multi}


def make_expressions(
    rng: np.random.Generator, objects: list[SynthObject], visible: np.ndarray, frames: int, mix: Mapping[str, float]
) -> tuple[list[tuple[str, tuple[int, ...]]], list[str]]:
    """``(sentence, obj_ids)`` pairs and their kinds for a scene; ``visible`` ``(N, T, H, W)`` bool,
    ``mix`` the normalised fraction of each kind (motion is dropped for 1-frame videos)."""
    scene = _Scene(objects, visible)
    kinds = list(EXPRESSION_KINDS)
    p = np.array([mix[k] for k in kinds], dtype=np.float64)
    if frames < 2:
        p[kinds.index("motion")] = 0.0
    p /= p.sum()
    target = int(rng.integers(MIN_EXPRESSIONS, MAX_EXPRESSIONS + 1))
    counts = [0] * len(scene.objects)
    out: list[tuple[str, tuple[int, ...]]] = []
    out_kinds: list[str] = []
    sentences: set[str] = set()
    for _ in range(target * 8):
        if len(out) >= target:
            break
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        made = _BUILDERS[kind](rng, scene, counts)
        if made is None or made[0] in sentences:
            continue
        sentences.add(made[0])
        out.append(made)
        out_kinds.append(kind)
        for i in made[1]:
            counts[i] += 1
    # appearance descriptions always exist (attribute tuples are distinct): top up to the minimum
    i = 0
    while len(out) < MIN_EXPRESSIONS and i < len(scene.objects):
        for attrs in scene.unique_descriptions(i):
            sentence = _phrase(rng, attrs)
            if sentence not in sentences:
                sentences.add(sentence)
                out.append((sentence, (i,)))
                out_kinds.append("appearance")
                break
        i += 1
    return out, out_kinds


def _tokens(sentence: str) -> list[str]:
    return [re.sub(r"[^\w]", "", t) for t in sentence.lower().split() if re.sub(r"[^\w]", "", t)]


def _parse_np(words: list[str]) -> tuple[dict[str, str], bool, int]:
    """Parse ``the ... noun`` at the start of ``words``: (attributes, plural, words used)."""
    if not words or words[0] != "the":
        raise ValueError(f"expected 'the' at {' '.join(words)!r}")
    attrs: dict[str, str] = {}
    k = 1
    while k < len(words):
        wd = words[k]
        if wd in SIZES:
            attrs["size"] = wd
        elif wd in TEXTURES:
            attrs["texture"] = wd
        elif wd in COLOURS:
            attrs["colour"] = wd
        else:
            break
        k += 1
    if k >= len(words):
        raise ValueError("noun phrase without a noun")
    noun = words[k]
    for base in SHAPES + GENERIC_NOUNS:
        if noun in (base, plural_of(base)):
            if base in SHAPES:
                attrs["shape"] = base
            return attrs, noun != base, k + 1
    raise ValueError(f"unknown noun {noun!r}")


def resolve(video: SynthVideo, sentence: str) -> tuple[int, ...]:
    """The objects of ``video`` that ``sentence`` (in the generator's grammar) refers to, sorted.

    Relations count only when they hold clearly (see ``_Scene.relation_holds``).
    Raises ``ValueError`` on a sentence outside the grammar.
    """
    scene = _Scene(video.objects, video.masks)
    words = _tokens(sentence)
    if len(words) >= 2 and words[0] == "the" and words[1] in NUMBERS.values():
        count = {v: k for k, v in NUMBERS.items()}[words[1]]
        attrs, plural, used = _parse_np(["the"] + words[2:])
        if not plural or used + 1 != len(words):
            raise ValueError(f"bad multi-object sentence {sentence!r}")
        members = scene.select(attrs)
        return tuple(sorted(members)) if len(members) == count else ()
    attrs, plural, used = _parse_np(words)
    if plural:
        raise ValueError(f"plural without a number in {sentence!r}")
    candidates = scene.select(attrs)
    rest = words[used:]
    if not rest:
        return tuple(sorted(candidates))
    clause = " ".join(rest)
    for tag, clauses in MOTION_CLAUSES.items():
        if clause in clauses:
            return tuple(sorted(i for i in candidates if tag in video.objects[i].tags))
    for rel in RELATIONS:
        rel_words = rel.split()
        if rest[: len(rel_words)] == rel_words:
            ref_attrs, ref_plural, ref_used = _parse_np(rest[len(rel_words) :])
            if ref_plural or len(rel_words) + ref_used != len(rest):
                raise ValueError(f"bad relation in {sentence!r}")
            refs = scene.select(ref_attrs)
            if len(refs) != 1:
                return ()
            (j,) = refs
            return tuple(sorted(i for i in candidates if scene.relation_holds(i, j, rel)))
    raise ValueError(f"unknown clause {clause!r} in {sentence!r}")


def pick_expressions(video: SynthVideo, count: int) -> list[int]:
    """Indices of up to ``count`` of ``video``'s expressions, one per kind first (appearance,
    motion, relation, multi), in index order (what the demo and the web page's examples show)."""
    chosen: list[int] = []
    for kind in ("appearance", "motion", "relation", "multi"):
        for i, k in enumerate(video.kinds):
            if k == kind and i not in chosen:
                chosen.append(i)
                break
    chosen += [i for i in range(len(video.expressions)) if i not in chosen]
    return sorted(chosen[:count])
