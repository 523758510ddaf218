"""The sentences of synthetic videos single out their objects (`flowrvs.data.synth.grammar`)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from flowrvs.data.synth.generate import generate_video, video_rng
from flowrvs.data.synth.grammar import resolve
from flowrvs.data.synth.vocabulary import EXPRESSION_KINDS, EXPRESSION_MIX, VOCABULARY


@pytest.mark.parametrize("frames,size", [(1, (32, 48)), (2, (16, 16)), (9, (128, 224)), (16, (48, 80))])
def test_expressions_single_out_their_objects(frames, size):
    kinds = Counter()
    for i in range(40):
        video = generate_video(video_rng(11, i), frames, size)
        sentences = [s for s, _ in video.expressions]
        assert len(set(sentences)) == len(sentences)
        for (sentence, ids), kind in zip(video.expressions, video.kinds):
            assert ids == tuple(sorted(set(ids))) and all(0 <= j < len(video.objects) for j in ids)
            assert resolve(video, sentence) == ids, (sentence, kind)
            assert video.union_mask(video.expressions.index((sentence, ids))).any(), sentence
            if kind == "multi":
                assert len(ids) >= 2
        kinds.update(video.kinds)
    assert kinds["appearance"] > 0 and kinds["relation"] + kinds["multi"] > 0
    assert (kinds["motion"] == 0) == (frames == 1)


def test_vocabulary_covers_every_sentence():
    assert VOCABULARY == sorted(set(VOCABULARY))
    assert all(w == w.lower() and w.isalpha() for w in VOCABULARY)
    vocab = set(VOCABULARY)
    used = set()
    for i in range(200):
        frames = (1, 2, 3, 9, 12)[i % 5]
        video = generate_video(video_rng(5, i), frames, (64, 112))
        for sentence, _ in video.expressions:
            words = [re.sub(r"[^\w]", "", w) for w in sentence.lower().split()]
            assert set(words) <= vocab, sentence
            used |= set(words)
    assert len(used) > 0.8 * len(vocab)


def test_expression_mix_and_motion_scenes():
    kinds = Counter()
    tags = Counter()
    absent_targets = 0
    for i in range(150):
        video = generate_video(video_rng(2, i))
        kinds.update(video.kinds)
        for obj in video.objects:
            tags.update(obj.tags)
        present = video.masks.any(axis=(2, 3))  # (N, T)
        absent_targets += sum(not present[list(ids)].any(axis=0).all() for _, ids in video.expressions)
    total = sum(kinds.values())
    mix = {k: kinds[k] / total for k in EXPRESSION_KINDS}
    for kind, expected in EXPRESSION_MIX.items():
        assert abs(mix[kind] - expected) < 0.08, mix
    for tag in ("left", "right", "up", "down", "stops", "turns", "still", "enters", "leaves"):
        assert tags[tag] > 0, tags
    assert absent_targets > 0  # some expressions refer to objects that enter or leave
    only = generate_video(4, mix={"appearance": 1.0})
    assert set(only.kinds) == {"appearance"}
