#!/bin/bash
# run_alignment.sh — reproduces the accuracy alignment of docs/accuracy.md end to end.
#
# For each seed: MoCo v2 pretraining of the recipe align_moco_v2_r18_cifar10.yaml on a
# CIFAR-10 subset, by moco-train and by the PyTorch reference (moco_cifar_ref.py); then on each
# side's own result a kNN evaluation and the short linear evaluation of
# align_lincls_r18_cifar10.yaml. As a cross-check of the evaluation code alone, moco-train's kNN
# also runs on the PyTorch checkpoint (converted by tools/convert_checkpoint.py). Prints the
# tables of docs/accuracy.md at the end (alignment_table.py).
#
# usage: tests/reference/run_alignment.sh [OUT_DIR]       (default runs/alignment)
# env:   SEEDS="0 1"  SIDES="mocod torch"  TRAIN_PER_CLASS=500  VAL_PER_CLASS=500  JOBS=2 (runs side by side, each
#        on one thread)  LIN_LR=<lincls lr of both sides; default: the recipe's>
#        STOP_AFTER=pretrain (only the pretrainings, e.g. to start them before the evaluation is settled)
#        THREADS=1  DATASETS=../shared/datasets  MOCO_TRAIN=path (default build/bin/moco-train)
# A finished step (its result file exists) is skipped on a rerun, so an interrupted run resumes.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$REPO/runs/alignment}" && cd "${1:-$REPO/runs/alignment}" && pwd)
SEEDS=${SEEDS:-"0 1"}
SIDES=${SIDES:-"mocod torch"}
TRAIN_PER_CLASS=${TRAIN_PER_CLASS:-500}
VAL_PER_CLASS=${VAL_PER_CLASS:-500}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}   # of moco-train's kNN and linear evaluation (only float summation order depends on it)
DATASETS=${DATASETS:-$REPO/../shared/datasets}
PY=/usr/bin/python3
MT=${MOCO_TRAIN:-$REPO/build/bin/moco-train}   # MOCO_TRAIN: a fixed binary, e.g. while editing
REF="$PY $REPO/tests/reference/moco_cifar_ref.py"
PRE=$REPO/tests/reference/align_moco_v2_r18_cifar10.yaml
LIN=$REPO/tests/reference/align_lincls_r18_cifar10.yaml
LIN_LR=${LIN_LR:-$(sed -n 's/^optim: {lr: \([0-9.e+-]*\),.*/\1/p' "$LIN")}
LIN_ARGS="--epochs 5 --lr $LIN_LR --batch 256 --milestones 3 4"   # = $LIN's optim section
STOP_AFTER=${STOP_AFTER:-}

[ -n "${MOCO_TRAIN:-}" ] || make -C "$REPO" -s build/bin/moco-train

# The data: the first N files (name order) of every class of cifar10-jpeg, as symlinks.
DATA=$OUT/data
if [ ! -d "$DATA/full/train" ]; then
    mkdir -p "$DATA/full"
    for split in train val; do tar -xzf "$DATASETS/cifar10-jpeg/$split.tar.gz" -C "$DATA/full"; done
    mv "$DATA/full/cifar10-jpeg/"* "$DATA/full/" && rmdir "$DATA/full/cifar10-jpeg"
fi
for split in train:$TRAIN_PER_CLASS val:$VAL_PER_CLASS; do
    s=${split%:*} n=${split#*:}
    [ -d "$DATA/subset/$s" ] && continue
    for c in "$DATA/full/$s"/*/; do
        dst="$DATA/subset/$s/$(basename "$c")"; mkdir -p "$dst"
        # awk, not head: head exits early, sort dies of SIGPIPE and pipefail ends the script.
        ls "$c" | sort | awk -v n="$n" 'NR <= n' | while read -r f; do ln -s "$c$f" "$dst/$f"; done
    done
done
TRAIN=$DATA/subset/train VAL=$DATA/subset/val

mocod_side() {  # seed
    local d=$OUT/mocod-s$1
    mkdir -p "$d"
    [ -e "$d/pretrain.done" ] || {
        "$MT" pretrain --config "$PRE" --set data.train="$TRAIN" --set data.val="$VAL" \
            --set seed="$1" --set checkpoint.dir="$d/checkpoints" \
            $( [ -n "$(ls "$d/checkpoints" 2>/dev/null)" ] && echo --resume "$d/checkpoints" ) \
            --events-fd 3 3>>"$d/pretrain.events.jsonl" 2>>"$d/pretrain.log"
        touch "$d/pretrain.done"; }
    [ "$STOP_AFTER" = pretrain ] && return
    [ -s "$d/knn.events.jsonl" ] ||
        "$MT" knn --config "$PRE" --checkpoint "$d/checkpoints" --set data.train="$TRAIN" \
            --set data.val="$VAL" --set resources.threads="$THREADS" --events-fd 3 3>"$d/knn.events.jsonl" 2>"$d/knn.log"
    [ -e "$d/lincls.done" ] || {
        rm -f "$d/lincls.events.jsonl"
        "$MT" lincls --config "$LIN" --set model.pretrained="$d/checkpoints" \
            --set data.train="$TRAIN" --set data.val="$VAL" --set seed="$1" --set optim.lr="$LIN_LR" \
            --set checkpoint.dir="$d/lincls" --set resources.threads="$THREADS" --events-fd 3 3>"$d/lincls.events.jsonl" 2>"$d/lincls.log"
        touch "$d/lincls.done"; }
}

torch_side() {  # seed
    local d=$OUT/torch-s$1
    [ -e "$d/checkpoint_final.pth.tar" ] ||
        $REF pretrain --config "$PRE" --train "$TRAIN" --seed "$1" --out "$d" 2>"$OUT/torch-s$1.log"
    [ "$STOP_AFTER" = pretrain ] && return
    [ -s "$d/knn.json" ] ||
        $REF knn --config "$PRE" --train "$TRAIN" --val "$VAL" --ckpt "$d/checkpoint_final.pth.tar" --out "$d/knn.json"
    [ -s "$d/lincls.jsonl" ] ||
        $REF lincls --config "$PRE" --train "$TRAIN" --val "$VAL" --seed "$1" \
            --ckpt "$d/checkpoint_final.pth.tar" $LIN_ARGS --out "$d/lincls.jsonl"
    # Cross-check: moco-train's kNN on the PyTorch-trained backbone.
    [ -s "$d/knn_by_mocod.events.jsonl" ] || {
        $PY "$REPO/tools/convert_checkpoint.py" from-torch --force "$d/checkpoint_final.pth.tar" "$d/backbone.safetensors"
        "$MT" knn --config "$PRE" --checkpoint "$d/backbone.safetensors" --set data.train="$TRAIN" \
            --set data.val="$VAL" --events-fd 3 3>"$d/knn_by_mocod.events.jsonl" 2>"$d/knn_by_mocod.log"; }
}

pids=()
for s in $SEEDS; do
    for side in $SIDES; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
        "${side}_side" "$s" & pids+=($!)
    done
done
for p in "${pids[@]}"; do wait "$p"; done
if [ "$SIDES" = "mocod torch" ] && [ -z "$STOP_AFTER" ]; then
    $PY "$REPO/tests/reference/alignment_table.py" "$OUT" | tee "$OUT/table.md"
fi
