#!/bin/bash
# The Fashion-MNIST methods evidence of issues 22 and 23, both sweeps in turn (each resumable: rerun after an
# interruption; finished runs are skipped):
#   float32   the methods protocol (flags/experiments/methods_fashion_mnist.cfg: one teacher, seeds 0-2) with the
#             FitNet, KD alone and the one-stage FitNet rows, the teacher in float32 (docs/results.md);
#   bfloat16  the same seeds and the same trained teacher, its forward pass in bfloat16, FitNet and KD alone
#             (docs/benchmark.md, "The three-seed evidence"): the accuracy cost of `teacher_precision=auto`.
# Needs Debian's dataset-fashion-mnist. Measured on 2 cores (AVX2, 2026-12-07): the teacher 117 min (24 epochs, early
# stopping), then ~100 min a seed for the first sweep; the second is FitNet and KD alone only (not yet measured).
# The tables: runs/experiments/methods_fmnist_{f32,bf16}/methods.md
#   bash scripts/measure_methods.sh
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
FLAGFILE=flags/experiments/methods_fashion_mnist.cfg
F32=runs/experiments/methods_fmnist_f32
BF16=runs/experiments/methods_fmnist_bf16
mkdir -p runs/experiments
$PY scripts/experiment.py --flagfile=$FLAGFILE --sweep_dir=$F32 --baselines=kd,one_stage \
    --teacher_precision=float32 >> $F32.log 2>&1
$PY scripts/experiment.py --flagfile=$FLAGFILE --sweep_dir=$BF16 --baselines=kd --teacher_precision=bfloat16 \
    --teacher_path=$F32/mnist_fitnet/seed0/teacher.keras >> $BF16.log 2>&1
