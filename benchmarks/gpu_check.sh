#!/usr/bin/env bash
# GPU check for clsviz: put paddlepaddle-gpu in a private venv, then time the predictor on
# the GPU (fp32, fp16, and TensorRT when the build has it) for ResNet50_vd at batch 1 and 8,
# and print a markdown table (JSON in $OUT_DIR/gpu_bench.json).
#
#   bash benchmarks/gpu_check.sh                 # from anywhere; needs an NVIDIA GPU + driver
#
# Environment (all optional):
#   CLSVIZ_GPU_VENV  venv folder                 (default: <repo>/.venv-gpu; reused if present)
#   PYTHON           interpreter for the venv    (default: python3; Paddle wants 3.9-3.13)
#   PADDLE_CUDA      wheel flavour: cu118 | cu126 | cu129   (default: from the driver's CUDA version)
#   PADDLE_GPU_SPEC  pip requirement             (default: paddlepaddle-gpu>=3.0)
#   PADDLE_INDEX     pip index for the wheel     (default: https://www.paddlepaddle.org.cn/packages/stable/$PADDLE_CUDA/)
#   PADDLE_WHEEL     a local paddlepaddle-gpu .whl, for machines without internet
#   REPEATS          timed runs per cell         (default: 50)
#   OUT_DIR          where the JSON goes         (default: <repo>/out/gpu)
#
# Why a private venv: paddlepaddle and paddlepaddle-gpu both install the `paddle` module,
# so the GPU build must not share an environment with the CPU one (clsviz's own
# dependency is the CPU package, so clsviz is installed here with --no-deps).
# PyPI only carries paddlepaddle-gpu 2.6; Paddle 3 GPU wheels come from PaddlePaddle's index.
# Downloads are large (1-3 GB with the CUDA runtime wheels).  Never part of CI.
set -euo pipefail

say() { printf '[gpu_check] %s\n' "$*" >&2; }
die() { printf '[gpu_check] ERROR: %s\n' "$1" >&2; exit "${2:-1}"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CLSVIZ_GPU_VENV:-$REPO/.venv-gpu}"
PYTHON="${PYTHON:-python3}"
REPEATS="${REPEATS:-50}"
OUT_DIR="${OUT_DIR:-$REPO/out/gpu}"
SPEC="${PADDLE_GPU_SPEC:-paddlepaddle-gpu>=3.0}"

# 1. a GPU and a driver ---------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this machine has no NVIDIA driver (or no GPU)" 2
nvidia-smi -L >/dev/null 2>&1 || die "nvidia-smi cannot talk to the driver: $(nvidia-smi -L 2>&1 | head -1)" 2
GPU_LINE="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
[ -n "$GPU_LINE" ] || die "nvidia-smi lists no GPU" 2
DRIVER_CUDA="$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -1)"
say "GPU: $GPU_LINE; driver supports CUDA ${DRIVER_CUDA:-unknown}"

# 2. which wheel ----------------------------------------------------------------------------
if [ -z "${PADDLE_CUDA:-}" ]; then
  [ -n "$DRIVER_CUDA" ] || die "cannot read the driver's CUDA version; set PADDLE_CUDA=cu118|cu126|cu129"
  major="${DRIVER_CUDA%%.*}"; minor="${DRIVER_CUDA#*.}"
  if   [ "$major" -gt 12 ] || { [ "$major" -eq 12 ] && [ "$minor" -ge 9 ]; }; then PADDLE_CUDA=cu129
  elif [ "$major" -eq 12 ] && [ "$minor" -ge 6 ]; then PADDLE_CUDA=cu126
  elif [ "$major" -eq 12 ]; then
    PADDLE_CUDA=cu126
    say "driver CUDA $DRIVER_CUDA < 12.6: relying on CUDA minor-version compatibility (set PADDLE_CUDA=cu118 if it fails)"
  elif [ "$major" -eq 11 ] && [ "$minor" -ge 8 ]; then PADDLE_CUDA=cu118
  else die "driver CUDA $DRIVER_CUDA is older than 11.8, the oldest Paddle 3 GPU wheel; update the driver"
  fi
fi
INDEX="${PADDLE_INDEX:-https://www.paddlepaddle.org.cn/packages/stable/$PADDLE_CUDA/}"

# 3. the venv -------------------------------------------------------------------------------
"$PYTHON" - <<'EOF' || die "$PYTHON is not Python 3.9-3.13 (set PYTHON=...)"
import sys
sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 13) else 1)
EOF
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "python -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || say "could not upgrade pip (offline?); going on"

if "$PY" -c "import paddle, sys; sys.exit(0 if paddle.is_compiled_with_cuda() else 1)" >/dev/null 2>&1; then
  say "paddlepaddle-gpu already in $VENV: $("$PY" -c 'import paddle; print(paddle.__version__)' 2>/dev/null)"
else
  if "$PY" -m pip show paddlepaddle >/dev/null 2>&1; then
    say "removing the CPU paddlepaddle from $VENV (it shadows the GPU build)"
    "$PY" -m pip uninstall --yes paddlepaddle >/dev/null
  fi
  if [ -n "${PADDLE_WHEEL:-}" ]; then
    [ -f "$PADDLE_WHEEL" ] || die "PADDLE_WHEEL=$PADDLE_WHEEL is not a file"
    say "installing $PADDLE_WHEEL"
    "$PY" -m pip install "$PADDLE_WHEEL" \
      || die "installing the local wheel failed (its dependencies may need the internet too)"
  else
    say "installing $SPEC from $INDEX (large download)"
    "$PY" -m pip install "$SPEC" -i "$INDEX" \
      || die "pip could not install $SPEC from $INDEX.
  Offline? Download the wheel elsewhere (pip download '$SPEC' -i $INDEX --python-version X.Y)
  and rerun with PADDLE_WHEEL=/path/to/paddlepaddle_gpu-*.whl.  Wrong CUDA flavour? Set PADDLE_CUDA."
  fi
fi
say "installing clsviz (editable, --no-deps) and its light dependencies"
"$PY" -m pip install --quiet numpy pillow pyyaml tqdm matplotlib psutil \
  || die "pip could not install numpy/pillow/pyyaml/tqdm/matplotlib/psutil"
"$PY" -m pip install --quiet --no-deps -e "$REPO" || die "pip install -e $REPO failed"

# 4. does Paddle see the GPU? -----------------------------------------------------------------
"$PY" - <<'EOF' || die "paddlepaddle-gpu is installed but cannot use the GPU (see above)" 3
import sys
import paddle
print(f"[gpu_check] paddle {paddle.__version__}, CUDA {paddle.version.cuda()}, cuDNN {paddle.version.cudnn()}, "
      f"TensorRT compiled in: {paddle.inference.get_trt_compile_version()}", file=sys.stderr)
if not paddle.is_compiled_with_cuda():
    sys.exit("this paddle build has no CUDA")
if paddle.device.cuda.device_count() < 1:
    sys.exit("paddle sees no CUDA device")
x = paddle.to_tensor([1.0, 2.0], place=paddle.CUDAPlace(0))
assert float((x * 2).sum()) == 6.0
EOF

# 5. the table --------------------------------------------------------------------------------
say "timing ResNet50_vd (random weights) on the GPU, batch 1 and 8, $REPEATS interleaved rounds"
cd "$REPO"
"$PY" benchmarks/gpu_bench.py --repeats "$REPEATS" --out "$OUT_DIR"
