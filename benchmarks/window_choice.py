"""What windowed inference costs or gains in J&F against whole-video inference, on long videos.

    nice python benchmarks/window_choice.py --threads 1 --markdown window_choice.md

(the defaults are the run recorded in docs/benchmarks.md: 4 videos of 97 frames, about 14 CPU
minutes on one core, 24 minutes wall under ``nice`` on the shared 2-core machine; ``--videos 1
--frames 41 --windows 9:4,17:4`` took 1.5 minutes).

Generates long synthetic videos in memory (``flowrvs.data.synth.generate``, the same generator as the
shipped model's held-out split, here with ``--frames`` frames), segments every sentence of
each video once over the whole video (one window: what the public code does) and once per
``window:overlap`` choice, windowing with :mod:`flowrvs.pipelines.windows` around the pipeline's public
stages (``encode_prompt``, ``encode_video``, ``sample``, ``decode``), and
scores each with J&F against the generator's masks. Logits are blended at the working size and
then resized to the input's, as a windowed pipeline would. Differences are paired (same
sentence, same video): the table gives each choice's mean J&F, its mean difference from
whole-video mode with the standard error of that mean over sentences, and the frames the VAE
encoded relative to the video's length (window padding and overlaps cost extra compute).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

import numpy as np
import torch

from flowrvs.io.atomic import atomic_path
from flowrvs.runtime.machine import cpu_name
from flowrvs.io.frames import fit_size, frames_to_tensor, logits_to_input_shape
from flowrvs.eval.metrics import score_expression
from flowrvs.eval.paired import format_difference, paired_difference
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.data.synth.generate import generate_video, video_rng
from flowrvs.pipelines.windows import LogitBlender, plan_windows


def parse_choices(text: str) -> list[tuple[int, int]]:
    """``"17:4,33:8"`` -> ``[(17, 4), (33, 8)]`` (checked by :func:`plan_windows`)."""
    out = []
    for item in text.split(","):
        window, _, overlap = item.partition(":")
        out.append((int(window), int(overlap or 0)))
        plan_windows(1, *out[-1])
    return out


@torch.no_grad()
def segment_logits(pipe, frames: np.ndarray, text_embeds: torch.Tensor, window: int | None, overlap: int,
                   num_steps: int) -> tuple[torch.Tensor, int]:
    """``(K, T, H, W)`` float32 logits of K sentences on ``frames`` ``(T, H, W, 3)``, inferred in the
    windows of :func:`plan_windows` and blended; also the frames the VAE encoded (with padding)."""
    num_frames, height, width = frames.shape[:3]
    work = fit_size(height, width, tuple(pipe.config.size))
    plan = plan_windows(num_frames, window, overlap)
    blender = LogitBlender(plan)
    out = torch.empty(text_embeds.shape[0], num_frames, height, width)
    encoded = 0
    for win in plan:
        clip = frames_to_tensor(frames[win.start : win.stop], work).to(pipe.dtype)
        encoded += clip.shape[2]
        z_video = pipe.encode_video(clip)
        # (K, C, T, h, w) -> (K, T, h, w): the mean of the decoder's channels (one for FlowRVS), as streaming does
        logits = pipe.decode(pipe.sample(z_video, text_embeds, num_steps)).float().mean(dim=1)
        for index, frame in blender.add(logits):
            out[:, index] = logits_to_input_shape(frame, frame.shape[0], height, width)
    assert blender.done
    return out, encoded


def machine() -> str:
    return f"{cpu_name()}, {torch.get_num_threads()} torch thread(s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-synthetic")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=97, help="frames per video")
    parser.add_argument("--size", default="96x160", help="HxW of the generated videos")
    parser.add_argument("--seed", type=int, default=101, help="generator seed (not the training splits' seeds)")
    parser.add_argument("--windows", default="17:4,17:8,33:4,33:8,65:8", help="window:overlap choices")
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown", default=None, help="write the table (with machine, command, date) here")
    parser.add_argument("--json", default=None, help="write per-sentence J&F here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    choices = [(None, 0)] + parse_choices(args.windows)
    h, w = (int(s) for s in args.size.lower().split("x"))

    pipe = load_pipeline(args.model, device="cpu", dtype=torch.float32)
    steps = args.steps or pipe.config.num_steps
    threshold = pipe.config.mask_threshold
    scores = {c: [] for c in choices}
    encoded = {c: 0 for c in choices}
    seconds = {c: 0.0 for c in choices}
    total_frames = 0
    for i in range(args.videos):
        video = generate_video(video_rng(args.seed, i), frames=args.frames, size=(h, w))
        sentences = [s for s, _ in video.expressions]
        truths = [video.union_mask(j) for j in range(len(sentences))]
        text_embeds = pipe.encode_prompt(sentences)
        total_frames += video.num_frames
        for choice in choices:
            start = time.perf_counter()
            logits, n = segment_logits(pipe, video.frames, text_embeds, *choice, steps)
            seconds[choice] += time.perf_counter() - start
            encoded[choice] += n
            for row, truth in zip(logits, truths):
                j, f = score_expression((row > threshold).numpy(), truth)
                scores[choice].append((j + f) / 2)
        print(f"video {i + 1}/{args.videos}: {len(sentences)} sentences, "
              + ", ".join(f"{name(c)} {np.mean(scores[c]):.3f}" for c in choices), file=sys.stderr, flush=True)

    whole = np.array(scores[choices[0]])
    rows = ["| window:overlap | J&F | minus whole-video | frames encoded / video length | seconds |", "|---|---|---|---|---|"]
    for c in choices:
        jf = np.array(scores[c])
        delta = "–" if c == choices[0] else format_difference(*paired_difference(jf, whole))
        rows.append(f"| {name(c)} | {jf.mean():.4f} | {delta} | {encoded[c] / total_frames:.2f} | {seconds[c]:.1f} |")
    table = "\n".join(rows)
    command = "python benchmarks/window_choice.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"{args.videos} synthetic videos of {args.frames} frames at {h}x{w} (seed {args.seed}), "
              f"{len(whole)} sentences, model `{args.model}`, {steps} step(s), threshold {threshold:g}.\n"
              f"Machine: {machine()}; torch {torch.__version__}; {date.today().isoformat()}.\n\n"
              f"```\n{command}\n```\n")
    print(header + "\n" + table)
    if args.markdown:
        with atomic_path(args.markdown) as tmp:
            tmp.write_text(header + "\n" + table + "\n")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({name(c): scores[c] for c in choices}))
    return 0


def name(choice: tuple[int | None, int]) -> str:
    return "whole video" if choice[0] is None else f"{choice[0]}:{choice[1]}"


if __name__ == "__main__":
    sys.exit(main())
