#!/usr/bin/env bash
# Reproduces the shipped tiny-synthetic model: data, the three stages, the held-out score.
#
#   benchmarks/train_tiny_synthetic.sh [WORK_DIR]      (default runs/tiny-synthetic)
#
# On a 2-core CPU this takes well under an hour. The model ends in WORK_DIR/flow/model;
# copy it to src/flowrvs/weights/tiny-synthetic/ to ship it.
set -euo pipefail
WORK=${1:-runs/tiny-synthetic}
CONFIG=$(dirname "$0")/../configs/tiny-synthetic.yaml
DATA=$WORK/data

flowrvs synth "$DATA" --videos 300 --seed 0 --split-name train --quiet
flowrvs synth "$DATA" --videos 50 --seed 1 --split-name valid_u --quiet

COMMON=(data.datasets.0.root="$DATA" progress=false)
# 1. a stand-in for Wan's pretrained VAE: the small VAE as an RGB (+ mask image) autoencoder
flowrvs train "$CONFIG" stage=autoencoder output_dir="$WORK/ae" "${COMMON[@]}" \
    optim.steps=1200 optim.lr=1e-3 optim.batch_size=2 data.crop=[64,64] ema.enabled=false
# 2. the mask decoder (encoder frozen), BCE + Dice
flowrvs train "$CONFIG" stage=mask_decoder output_dir="$WORK/dec" model.init="$WORK/ae/model" "${COMMON[@]}" \
    optim.steps=1000 optim.lr=5e-4 optim.batch_size=4 data.crop=[64,64] ema.enabled=false
# 3. the flow stage on cached latents
flowrvs train "$CONFIG" stage=flow output_dir="$WORK/flow" model.init="$WORK/dec/model" "${COMMON[@]}" \
    optim.steps=12000 optim.lr=5e-4 optim.batch_size=8 data.cache_latents=true data.hflip_p=0

# the quality bar: the held-out split (another seed, never seen in training)
flowrvs evaluate --dataset mevis --root "$DATA" --split valid_u --model "$WORK/flow/model" --out "$WORK/eval" --device cpu
