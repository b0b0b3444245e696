#!/bin/bash
# The automatic hint pair against the explicit one, and against the former automatic rule, on real data (issue 21,
# item 6; docs/own_models.md, "Automatic pairing measured"): Fashion-MNIST written as a 10,000-image 32x32 RGB folder,
# a MobileNetV2 alpha 0.35 teacher trained per seed (a folder's split depends on --seed), the 8-conv student of
# docs/own_models.md;
# per seed three FitNets from the same initial weights, differing only in the hint pair:
#   explicit  c5 <- block_3_expand_relu (16x16 <- 8x8, the paper's 9x9 conv regressor), and KD alone as reference;
#   auto      no --hints: the automatic pair (fitnets_tf.taps.auto_pair) and `auto` regressor;
#   former    c4 <- block_8_depthwise_relu (16x16 <- 2x2 through a 15x15 conv): what the former rule chose.
# Resumable (finished steps are skipped). Needs Debian's dataset-fashion-mnist. Then the table:
#   .venv/bin/python scripts/measure_pairing.py runs/pairing
#   bash scripts/measure_pairing.sh 0 1 2        (about 25 min a seed on 2 idle cores)
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${PAIRING_DIR:-runs/pairing}
FOLDER=runs/folders/fmnist32_10k
[ -d $FOLDER ] || $PY scripts/make_image_folder.py --out=$FOLDER --images=10000 --size=32
COMMON="--dataset=folder:$FOLDER --image_size=32 --channels=3 --preprocessing=tf --augmentation=pad_crop
  --crop_padding=4 --hint_epochs=5 --kd_epochs=15 --optimizer=adam --learning_rate=0.002 --batch_size=64
  --export=false --verbose=2"
mkdir -p $OUT
for SEED in "$@"; do
  PAIR=$OUT/pair_seed$SEED
  [ -f $PAIR/student.keras ] || $PY scripts/make_backbone_pair.py --folder=$FOLDER --out=$PAIR --image_size=32 \
      --alpha=0.35 --student=plain8 --augmentation=pad_crop --epochs=20 --batch_size=64 --learning_rate=0.002 \
      --seed=$SEED > $OUT/pair_seed$SEED.log 2>&1
  M="--teacher_path=$PAIR/teacher.keras --student_path=$PAIR/student.keras --seed=$SEED"
  for ARM in explicit auto former; do
    case $ARM in
      explicit) ARGS="--hints=c5:mobilenetv2_0.35_32/block_3_expand_relu --baselines=kd" ;;
      auto) ARGS="--baselines=" ;;
      former) ARGS="--hints=c4:mobilenetv2_0.35_32/block_8_depthwise_relu --regressor=conv --baselines=" ;;
    esac
    RUN=$OUT/$ARM/seed$SEED
    [ -f $RUN.ok ] && continue
    $PY scripts/run.py --model_dir=$RUN $COMMON $M $ARGS > $OUT/${ARM}_seed$SEED.log 2>&1 && touch $RUN.ok
  done
done
