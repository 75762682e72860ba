#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, from the repository root,
#
#     bash benchmarks/gpu_check.sh            # the cuda tests, then the throughput table (< 8 minutes)
#     bash benchmarks/gpu_check.sh --dry-run  # the same steps on the CPU, tiny: checks the script here
#
# 1. uses the Python that has torch (a CUDA build on the GPU machine; nothing is downloaded unless a
#    package is missing, and then only from the package index pip is configured with);
# 2. runs tests/test_cuda.py (a CUDA step equals the CPU step, fp16 with the scaler, exact resume,
#    data on the device, DDP over NCCL at world size 1, a compiled step); skipped without a GPU;
# 3. prints the step throughput table (batch 200 and 1,024; fp32 and bf16; eager and
#    torch.compile with CUDA graphs) with the paper protocol's projected hours.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== 1. environment"
if ! "$PY" -c "import torch, typer, rich, safetensors, PIL, imageio, numpy, pytest" 2>/dev/null; then
    echo "installing the package's dependencies (torch is kept as it is)"
    "$PY" -m pip install -q --no-deps -e . || true
    "$PY" -m pip install -q typer rich safetensors pillow imageio numpy pytest hypothesis
fi
"$PY" - <<'EOF'
import torch
print(f"torch {torch.__version__}; CUDA available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF

echo "== 2. cuda tests"
if [ $DRY = 1 ]; then
    # here every test is skipped with its reason; the file must still import and collect
    "$PY" -m pytest -q -rs -m cuda tests/test_cuda.py
else
    "$PY" -m pytest -q -rs -m cuda tests/test_cuda.py -x
fi

echo "== 3. throughput"
if [ $DRY = 1 ]; then
    "$PY" benchmarks/gpu_throughput.py --device cpu --dry-run --precisions fp32,bf16 --compile off
    # one compiled step on the CPU where a C++ compiler exists (inductor's CPU backend needs one)
    if command -v g++ >/dev/null || command -v clang++ >/dev/null; then
        "$PY" benchmarks/gpu_throughput.py --device cpu --dry-run --batches 4 --precisions fp32 --compile default
    else
        echo "no C++ compiler: the compiled CPU step is skipped"
    fi
else
    # reduce-overhead: CUDA graphs without max-autotune's kernel search, which alone can take
    # minutes per shape; `--compile max-autotune` to gpu_throughput.py measures that one too
    timeout 360 "$PY" benchmarks/gpu_throughput.py --device cuda --batches 200,1024 --precisions fp32,bf16 \
        --compile off,reduce-overhead
fi
echo "== done"
