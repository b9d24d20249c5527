#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (issue 12): install what is missing, then run
#   python -m xpnet.check; the test suite's CUDA cases; 10 epochs of python -m xpnet.train --device cuda
#   (Fashion-MNIST from /usr/share/datasets when present, else digits); the bench's GPU rows
# and write everything, with a summary of which steps passed, to one report file.
#
#   scripts/gpu_check.sh [--dry-run] [--report PATH] [--wheels DIR] [--epochs N]
#
# --dry-run prints the plan and writes it as the report without installing or running anything (it works
# without a GPU). --wheels DIR installs missing packages from wheels in DIR (pip --no-index), for machines
# without internet. Every step runs even when one before it failed; the exit status is 1 if any failed,
# 2 for bad usage or no GPU. The report is written to PATH.partial and renamed when complete.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "scripts/gpu_check.sh: error: $*" >&2; exit 2; }

DRY_RUN=0
REPORT="gpu-check-report.txt"
WHEELS=""
EPOCHS=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --report) [[ $# -ge 2 ]] || die "--report needs a path"; REPORT="$2"; shift ;;
    --wheels) [[ $# -ge 2 ]] || die "--wheels needs a folder"; WHEELS="$2"; shift ;;
    --epochs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--epochs needs a positive integer"; EPOCHS="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1': use --dry-run, --report PATH, --wheels DIR or --epochs N" ;;
  esac
  shift
done
[[ -z "$WHEELS" || -d "$WHEELS" ]] || die "--wheels $WHEELS is not a folder: give the folder holding the .whl files"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPORT_DIR="$(dirname "$REPORT")"
[[ -d "$REPORT_DIR" && -w "$REPORT_DIR" ]] || die "cannot write the report in '$REPORT_DIR': choose another --report"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY not found: set PYTHON to the interpreter of the environment to test"
PARTIAL="$REPORT.partial"
: > "$PARTIAL"
FAILED=()

log() { echo "$*" | tee -a "$PARTIAL"; }

# run LABEL CMD...: log the command, run it (unless --dry-run) with its output in the report, note a failure.
run() {
  local label="$1"; shift
  log ""
  log "== $label: $*"
  [[ $DRY_RUN -eq 1 ]] && return 0
  set +e
  "$@" 2>&1 | tee -a "$PARTIAL"
  local rc=${PIPESTATUS[0]}
  set -e
  if [[ $rc -ne 0 ]]; then
    log "-- $label FAILED (exit $rc)"
    FAILED+=("$label")
  fi
}

# install_missing MODULE PACKAGE: pip-install PACKAGE when MODULE does not import (from --wheels if given).
install_missing() {
  if [[ $DRY_RUN -eq 0 ]] && "$PY" -c "import $1" 2>/dev/null; then
    log "$1: present"
  elif [[ -n "$WHEELS" ]]; then
    run "install $2" "$PY" -m pip install --no-index --find-links "$WHEELS" "$2"
  else
    run "install $2" "$PY" -m pip install "$2"
  fi
}

HAVE_SMI=0
if command -v nvidia-smi >/dev/null; then
  HAVE_SMI=1
elif [[ $DRY_RUN -eq 0 ]]; then
  rm -f "$PARTIAL"
  die "nvidia-smi not found: run this on a machine with an NVIDIA GPU and its driver (--dry-run shows the plan)"
fi
log "xpnet GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git') in $ROOT"
[[ $DRY_RUN -eq 1 ]] && log "dry run: the commands below are listed, not run"
CUDA_MAJOR=12
if [[ $HAVE_SMI -eq 1 ]]; then
  run "GPU" nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  CUDA_MAJOR="$(nvidia-smi | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)"
  CUDA_MAJOR="${CUDA_MAJOR:-12}"
else
  log "nvidia-smi not found (fine for a dry run)"
fi
log "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)"

install_missing array_api_compat array-api-compat
install_missing array_api_strict array-api-strict
# MLPClassifier (xpnet's estimator) and the digits data set need scikit-learn (with SciPy, joblib and
# threadpoolctl: bring their wheels for the machine's Python in --wheels where it has no network).
install_missing sklearn scikit-learn
install_missing cupy "cupy-cuda${CUDA_MAJOR}x"  # the driver's CUDA major version picks the wheel
if [[ $DRY_RUN -eq 1 ]] || ! "$PY" -c "import xpnet, sys; sys.exit(not xpnet.__file__.startswith('$ROOT'))" 2>/dev/null; then
  run "install xpnet" "$PY" -m pip install --no-deps -e .
fi

DATASET=digits
[[ -d /usr/share/datasets/fashion-mnist ]] && DATASET=fashion-mnist
run "xpnet.check" "$PY" -m xpnet.check
run "CUDA tests" "$PY" -m pytest -q -k cuda
run "train on cuda" "$PY" -m xpnet.train --device cuda --dataset "$DATASET" --epochs "$EPOCHS"
run "bench GPU rows" "$PY" scripts/bench.py --gpu --rounds 2 --json "${REPORT%.txt}-bench.json"

log ""
if [[ ${#FAILED[@]} -eq 0 ]]; then
  log "summary: every step passed$([[ $DRY_RUN -eq 1 ]] && echo ' (dry run: nothing ran)')"
else
  log "summary: FAILED: ${FAILED[*]}"
fi
mv "$PARTIAL" "$REPORT"
echo "report written to $REPORT"
[[ ${#FAILED[@]} -eq 0 ]]
