#!/usr/bin/env bash
# The GPU check (a few minutes on one GPU): the CUDA tests, then bench_train on a synthetic
# full-size CIFAR-10 with the paper's protocol, plain and with torch.compile.
#     bash bench/gpu_check.sh [DATA_DIR]    (default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU is visible to torch')"
data="${1:-$(mktemp -d)}"
timeout 150 python -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py
timeout 120 python bench/bench_train.py --preset paper-cifar10 --device cuda --synthetic "$data" --steps 60
timeout 120 python bench/bench_train.py --preset paper-cifar10 --device cuda --synthetic "$data" --steps 60 --compile
