#!/usr/bin/env bash
# run_all.sh — every benchmark, each printing a ratio against its named peer measured in the
# same run (`make bench`). Figures and how to read them: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${MOCO_BUILD:-build}
echo "== conv kernels against the machine's sgemm rate (OpenBLAS cblas_sgemm)"
"$B/bin/conv_bench" --batch 8
echo "== data pipeline against torchvision + PIL (two MoCo v2 views per image, one core each)"
/usr/bin/python3 bench/data_bench.py --n 300
echo "== MoCo v2 training step against PyTorch (same model, batch, threads)"
/usr/bin/python3 bench/moco_step_vs_torch.py --cases r18c,r50 --steps 3
echo "== data-parallel scaling, 1 -> 2 ranks, against PyTorch DDP (gloo) on the same machine"
/usr/bin/python3 bench/ranks_scaling.py --warmup 2 --steps 6
