"""Pick a model's ``mask_threshold`` on a tuning split (never on the split it is scored on).

    flowrvs synth runs/tiny-synthetic/data-tune --videos 20 --seed 3 --split-name valid
    python benchmarks/tune_threshold.py --model MODEL --root runs/tiny-synthetic/data-tune --split valid [--write]

Segments every expression of the split once, keeps the mask decoder's logits, and prints
J, F and J&F (MeViS-style: per-expression means) for each threshold of a grid. ``--write``
stores the best threshold in the model folder's ``model_index.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json

import torch

GRID = (-12.0, -10.0, -8.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0)


def main() -> None:
    from flowrvs.data.mevis import MeViSDataset
    from flowrvs.io.atomic import write_json
    from flowrvs.eval.metrics import jf_summary
    from flowrvs.eval.metrics import score_expression
    from flowrvs.loading.resolve import resolve_model_dir
    from flowrvs.pipelines.loader import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--limit", type=int, default=None, help="first K videos")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="store the best threshold in the model folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = load_pipeline(args.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    dataset = MeViSDataset(args.root, args.split)
    scores: dict[float, tuple[list[float], list[float]]] = {t: ([], []) for t in GRID}
    for video in dataset.videos()[: args.limit]:
        expressions = dataset.expressions(video)
        result = pipe(dataset.load_frames(video), [e.sentence for e in expressions], return_logits=True,
                      batch_size=8)
        for expression, logits in zip(expressions, result.logits):
            truth = dataset.load_mask(expression)
            for threshold, (js, fs) in scores.items():
                j, f = score_expression(logits > threshold, truth)
                js.append(j)
                fs.append(f)
    summaries = {t: jf_summary(js, fs) for t, (js, fs) in scores.items()}
    print(f"{'threshold':>9}  {'J':>6}  {'F':>6}  {'J&F':>6}   ({len(scores[0.0][0])} expressions)")
    for t, s in summaries.items():
        print(f"{t:9.1f}  {s['J']:6.3f}  {s['F']:6.3f}  {s['J&F']:6.3f}")
    best = max(GRID, key=lambda t: summaries[t]["J&F"])
    print(f"best: {best} (J&F {summaries[best]['J&F']:.3f}; at 0: {summaries[0.0]['J&F']:.3f})")
    if args.write:
        folder = resolve_model_dir(args.model)
        index = json.loads((folder / "model_index.json").read_text())
        write_json(folder / "model_index.json", {**index, "mask_threshold": best}, indent=2)
        print(f"wrote mask_threshold={best} into {folder}/model_index.json")


if __name__ == "__main__":
    main()
