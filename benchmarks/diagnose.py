"""Where a model's J&F goes: the mask auto-encoding ceiling and the DiT's error at t = 1.

    python benchmarks/diagnose.py --model tiny-synthetic --root runs/tiny-synthetic/data --split valid_u

For the first ``--limit`` expressions of a MeViS-format split it reports
- the mask auto-encoding ceiling: encode the true mask, decode it, mean per-frame IoU at the
  dataset's resolution (no model can beat its own mask decoder);
- the mean squares of the normalised video latent, of its posterior std (what SPA adds) and
  of the mask latent;
- the DiT's error at t = 1: mean square of (sampled mask latent - true mask latent), 1 step.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    scores = [1.0 if not (p | g).any() else (p & g).sum() / (p | g).sum() for p, g in zip(pred, gt)]
    return float(np.mean(scores))


def main() -> None:
    from flowrvs.data.mevis import MeViSDataset
    from flowrvs.frames import fit_size, frames_to_tensor, logits_to_input_shape, masks_to_tensor
    from flowrvs.models.vae import decode_mask_logits, encode_mask, latent_stats
    from flowrvs.pipeline import FlowRVSPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="valid_u")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = FlowRVSPipeline.from_pretrained(args.model, device="cpu")
    dataset = MeViSDataset(args.root, args.split)
    ceiling, errors, video_sq, std_sq, mask_sq = [], [], [], [], []
    with torch.no_grad():
        for expression in dataset.all_expressions()[: args.limit]:
            frames, truth = dataset.load_frames(expression.video), dataset.load_mask(expression)
            t, h, w = truth.shape
            size = fit_size(h, w, pipe.config.size)
            z_mask = encode_mask(pipe.vae, masks_to_tensor(truth, size), pipe.config.mask_latent_normalized)
            logits = decode_mask_logits(pipe.vae, z_mask, pipe.config.mask_latent_normalized)[0]
            ceiling.append(frame_iou((logits_to_input_shape(logits, t, h, w) > 0).numpy(), truth))
            posterior = pipe.vae.encode(frames_to_tensor(frames, size)).latent_dist
            _, scale = latent_stats(pipe.vae, posterior.mean)
            z_video = pipe.encode_video(frames_to_tensor(frames, size))
            sampled = pipe.sample_mask_latents(z_video, pipe.encode_prompts([expression.sentence]), 1)
            errors.append(float((sampled - z_mask).pow(2).mean()))
            video_sq.append(float(z_video.pow(2).mean()))
            std_sq.append(float((posterior.std / scale).pow(2).mean()))
            mask_sq.append(float(z_mask.pow(2).mean()))
    print(f"{args.model} on {args.root} {args.split}, {len(ceiling)} expressions")
    print(f"mask auto-encoding ceiling (mean per-frame IoU): {np.mean(ceiling):.3f}")
    print(f"mean square: video latent {np.mean(video_sq):.3f}, its posterior std {np.mean(std_sq):.3f}, "
          f"mask latent {np.mean(mask_sq):.3f}")
    print(f"DiT error at t=1 (mean square of sampled - true mask latent): {np.mean(errors):.3f}")


if __name__ == "__main__":
    main()
