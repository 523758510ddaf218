#!/usr/bin/env bash
# benchmarks/train_demo.py on a fresh GPU machine (issue 18), packed for the device tool's $OUT.
#
#   bash benchmarks/train_demo_gpu.sh [train_demo.py options, e.g. --budget 480]
#
# From a session with a GPU lent (device tool), after fetching the wheels here once with the
# `pip download` command of docs/tiny-synthetic.md into the git-ignored wheels/:
#
#   run(command="bash benchmarks/train_demo_gpu.sh", carry=["wheels"], timeout_s=600)
#
# 1. installs the carried wheels (diffusers, av, pycocotools, omegaconf: the packages the GPU
#    image lacks) into /tmp/site, without their dependencies (the image has them);
# 2. runs train_demo.py with --out /tmp/demo (its own clock: --budget, default 480 s);
# 3. leaves in $OUT (at most 8 files of 16 MiB): log.txt, numbers.json, numbers.md,
#    model.tgz.part-NN (OUT/model with tune.txt and the evaluations' metrics, split in 15 MiB
#    parts: `cat model.tgz.part-* | tar xz`), logs.tgz (every subprocess log and the run's train.log).
set -uo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-/tmp/demo}
RESULT=${OUT:-$DEMO-result}
mkdir -p "$RESULT"
if compgen -G "wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site wheels/*.whl \
        || { echo "train_demo_gpu: the wheels did not install" | tee "$RESULT/log.txt"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; nproc; } 2>&1 | tee "$RESULT/log.txt"
python3 benchmarks/train_demo.py --out "$DEMO" "$@" 2>&1 | tee -a "$RESULT/log.txt"
status=${PIPESTATUS[0]}
cp "$DEMO"/numbers.json "$DEMO"/numbers.md "$RESULT"/ 2>/dev/null
if [ -d "$DEMO/model" ]; then
    (cd "$DEMO" && tar -czf - model tune.txt eval/*/metrics.json 2>/dev/null) | split -b 15m -d - "$RESULT/model.tgz.part-"
fi
(cd "$DEMO" && tar -czf "$RESULT/logs.tgz" logs work/logs work/runs/flow/train.log work/runs/flow/config.yaml 2>/dev/null)
exit "$status"
