"""`flowrvs segment VIDEO -p SENTENCE [-p ...] --model M --out DIR`: masks for your own video.

Writes, atomically (a temporary folder renamed into place at the end):
``DIR/<k>/<frame>.png`` (0/255, one folder per prompt k), ``DIR/masks.json`` (COCO RLE per
prompt per frame, with the prompt text) and ``DIR/overlay.mp4``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FlowRVSError
from .common import add_model_args, load_pipeline, parse_size


def register(sub) -> None:
    parser = sub.add_parser("segment", help="segment the objects that sentences describe in a video")
    parser.add_argument("video", help="video file (mp4/avi/webm/gif...), image, or folder of frames")
    parser.add_argument("-p", "--prompt", action="append", required=True, dest="prompts", help="a sentence (repeatable)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument("--size", default=None, help="HxW box frames are resized into (default: the model's, 480x832)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per DiT pass")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    add_model_args(parser)
    parser.set_defaults(func=run)


def write_segmentation(folder: Path, frames, result, source: str, overlay: bool = True) -> None:
    """Write ``<k>/<frame>.png``, masks.json and overlay.mp4 of a :class:`SegmentationResult` into ``folder``.

    frames: the ``(T, H, W, 3)`` uint8 input frames (for the overlay).
    """
    from ..rle import encode_rle
    from ..video import overlay_masks, write_mask_pngs, write_video

    folder = Path(folder)
    entries = []
    for k, (prompt, masks) in enumerate(zip(result.prompts, result.masks)):
        write_mask_pngs(folder / str(k), masks, result.frame_names)
        rles = {name: encode_rle(m) for name, m in zip(result.frame_names, masks)}
        entries.append({"index": k, "prompt": prompt, "masks": rles})
    num_frames, height, width = result.masks[0].shape
    index = {
        "video": source,
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "fps": result.fps,
        "frame_names": result.frame_names,
        "prompts": entries,
    }
    (folder / "masks.json").write_text(json.dumps(index))
    if overlay:
        write_video(folder / "overlay.mp4", overlay_masks(frames, result.masks), result.fps)


def run(args) -> int:
    from ..fileio import atomic_dir
    from ..models.text import check_prompts
    from ..video import read_video

    prompts = check_prompts(args.prompts)
    size = parse_size(args.size) if args.size else None
    if args.steps is not None and args.steps < 1:
        raise FlowRVSError(f"--steps must be at least 1, got {args.steps}")
    video = read_video(args.video)  # before loading the model: a bad video fails fast
    pipe = load_pipeline(args)
    result = pipe(video, prompts, num_steps=args.steps, size=size, batch_size=args.batch_size,
                  mask_threshold=args.mask_threshold)
    with atomic_dir(args.out) as tmp:
        write_segmentation(tmp, video.frames, result, str(args.video), overlay=not args.no_overlay)
    print(f"wrote {len(prompts)} mask track(s) of {len(result.frame_names)} frames to {args.out}")
    return 0
