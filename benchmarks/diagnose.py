"""Where a model's J&F goes: the mask auto-encoding ceiling and the DiT's error at t = 1.

    python benchmarks/diagnose.py --model tiny-synthetic --root runs/tiny-synthetic/data --split valid_u

For the first ``--limit`` expressions of a MeViS-format split it reports
- the mask auto-encoding ceiling: encode the true mask, decode it, mean per-frame IoU at the
  dataset's resolution (no model can beat its own mask decoder);
- the mean squares of the normalised video latent, of its posterior std (what SPA adds) and
  of the mask latent;
- the DiT's error at t = 1: mean square of (sampled mask latent - true mask latent), 1 step;
- how much the sampled mask latent depends on the sentence: per video, the mean square
  deviation of its sentences' sampled latents from their mean, next to the same for the true
  mask latents (a model that ignores the text has 0 there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    scores = [1.0 if not (p | g).any() else (p & g).sum() / (p | g).sum() for p, g in zip(pred, gt)]
    return float(np.mean(scores))


def main() -> None:
    from flowrvs.data.mevis import MeViSDataset
    from flowrvs.io.atomic import write_json
    from flowrvs.io.frames import fit_size, frames_to_tensor, logits_to_input_shape, masks_to_tensor
    from flowrvs.models.vae import decode_mask_logits, encode_mask, latent_stats
    from flowrvs.pipelines.loader import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="valid_u")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = load_pipeline(args.model, device="cpu")
    dataset = MeViSDataset(args.root, args.split)
    ceiling, errors, video_sq, std_sq, mask_sq, pred_spread, true_spread = [], [], [], [], [], [], []
    done = 0
    with torch.no_grad():
        for video in dataset.videos():
            expressions = dataset.expressions(video)[: args.limit - done]
            if not expressions:
                break
            done += len(expressions)
            frames = dataset.load_frames(video)
            t, h, w = frames.shape[:3]
            size = fit_size(h, w, pipe.config.size)
            posterior = pipe.vae.encode(frames_to_tensor(frames, size)).latent_dist
            _, scale = latent_stats(pipe.vae, posterior.mean)
            z_video = pipe.encode_video(frames_to_tensor(frames, size))
            video_sq.append(float(z_video.pow(2).mean()))
            std_sq.append(float((posterior.std / scale).pow(2).mean()))
            embeds = pipe.encode_prompt([e.sentence for e in expressions])
            if pipe.config.source == "noise":  # one noise for all sentences: their spread is the text's alone
                sampled = torch.cat([pipe.sample(z_video, embeds[i : i + 1], 1, torch.Generator().manual_seed(0))
                                     for i in range(len(expressions))])
            else:
                sampled = pipe.sample(z_video, embeds, 1)
            truths = [dataset.load_mask(e) for e in expressions]
            z_mask = torch.cat([encode_mask(pipe.vae, masks_to_tensor(m, size), pipe.config.mask_latent_normalized)
                                for m in truths])
            logits = decode_mask_logits(pipe.vae, z_mask, pipe.config.mask_latent_normalized)
            for i, truth in enumerate(truths):
                ceiling.append(frame_iou((logits_to_input_shape(logits[i], t, h, w) > 0).numpy(), truth))
            errors += (sampled - z_mask).pow(2).mean((1, 2, 3, 4)).tolist()
            mask_sq += z_mask.pow(2).mean((1, 2, 3, 4)).tolist()
            if len(expressions) > 1:
                pred_spread.append(float((sampled - sampled.mean(0)).pow(2).mean()))
                true_spread.append(float((z_mask - z_mask.mean(0)).pow(2).mean()))
    figures = {
        "expressions": len(ceiling),
        "ceiling_iou": float(np.mean(ceiling)),
        "video_latent_ms": float(np.mean(video_sq)),
        "posterior_std_ms": float(np.mean(std_sq)),
        "mask_latent_ms": float(np.mean(mask_sq)),
        "t1_error": float(np.mean(errors)),
        "text_dependence": float(np.mean(pred_spread)),
        "text_dependence_true": float(np.mean(true_spread)),
    }
    if args.json:
        write_json(args.json, figures, indent=2)
    f = figures
    print(f"{args.model} on {args.root} {args.split}, {f['expressions']} expressions")
    print(f"mask auto-encoding ceiling (mean per-frame IoU): {f['ceiling_iou']:.3f}")
    print(f"mean square: video latent {f['video_latent_ms']:.3f}, its posterior std {f['posterior_std_ms']:.3f}, "
          f"mask latent {f['mask_latent_ms']:.3f}")
    print(f"DiT error at t=1 (mean square of sampled - true mask latent): {f['t1_error']:.3f}")
    print(f"text dependence (spread of one video's mask latents across its sentences): "
          f"sampled {f['text_dependence']:.3f}, true {f['text_dependence_true']:.3f}")


if __name__ == "__main__":
    main()
