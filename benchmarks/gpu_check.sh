#!/usr/bin/env bash
# benchmarks/gpu_check.sh (`make gpu-check`): every check that needs a GPU, in ONE call on a one-GPU
# box (H100/H200), in at most 8 minutes. It measures and reports; it fixes nothing and claims nothing
# it did not measure. No venv and no internet there: it uses the box's python3 (torch, torchvision,
# typer, rich, matplotlib, scipy, h5py, pytest are there) and installs only the carried wheels.
#
# Steps, in order, each under its own `timeout` (a stuck step is killed, recorded, and the next one
# runs), everything tee'd to $OUT/gpu_check.log ($OUT: the device tool's folder, else ./gpu_out):
#   setup    the carried wheels (.whl/*.whl: torch-summary) into /tmp/site; PYTHONPATH=/tmp/site:<repo>
#   env      nvidia-smi -L; Python, torch, CUDA, cuDNN, NCCL versions
#   tests    pytest -m cuda over tests/ (tests/test_cuda.py, tests/test_graphs.py): fused sweep ==
#            separate runs, graphed == eager, CPU == CUDA on the real data, resume on CUDA, torchrun
#            at world size 1 -> pytest.log, junit.xml, cuda_checks.json (what each test measured).
#            No -x: with one GPU call per session, a first failure must not hide the other results.
#   bench    benchmarks/bench.py --device cuda at the issue's sizes (50 SIGNS epochs; train-ae
#            4 latent sizes x 10 epochs x 60k, the seed's AE timed for 1 epoch and scaled x 10)
#            -> bench.json (rewritten after every row, so a cut run keeps what it measured)
#   summary  ONE table: each step, the test summary line and failures, the bench table, every GPU
#            goal met / MISSED / not measured -> summary.txt, gpu_check.json
# 7 files land in $OUT (the device tool brings back at most 8, no subfolders needed).
#
# PREPARING THE CALL (on the CPU machine, in the checkout whose tree the device tool sends):
#   (a) torch-summary, the one package the box lacks, as a wheel. /.whl/ is already in .gitignore,
#       so `echo /.whl/ >> .git/info/exclude` is not needed (harmless). Checked to work (2026-11):
#         python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#           --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#           --platform any -d .whl torch-summary==1.4.5
#       (it is pure Python: torch_summary-1.4.5-py3-none-any.whl, 16 kB, no dependencies)
#   (b) the data: `make gpu-data` copies ../shared/data/sign_data (npy, 14.2 MiB) and mnist-mini
#       (plain IDX, 7.5 MiB) into gpu_data/ (ignored by git): 21.6 MiB, inside the 64 MiB carry limit.
#   (c) the call (the device tool's `run`):
#         command: bash benchmarks/gpu_check.sh      (or: make gpu-check OUT=$OUT, if make is there)
#         carry:   [".whl", "gpu_data"]
#         timeout_s: 480
#       The table is the last thing printed (the reply's output_tail); the files come back from $OUT.
#   The device tool sends the checkout the session started in (a helper's worktree does not travel):
#   that checkout needs this script, and (a) and (b) done in it.
#
# TIME (H100, estimated conservatively: torch import + CUDA init ~10 s per process, graph capture a
# few s per shape; nothing here was timed on a GPU yet). Each step's limit is the smaller of its cap
# and what is left of BUDGET (455 s) after reserving the later steps' minimum, so the script ends
# before 480 s whatever hangs (a killed step gets 10 s more to die: counted in the reserves).
#   setup    ~3 s    (cap 30)   pip installs one 16 kB wheel
#   env      ~10 s   (cap 40)   one torch import + CUDA init
#   tests    ~120 s  (cap 180)  collection ~5 s, torch+CUDA ~10 s; graph tests ~15 s; fused ~5 s;
#                               CPU vs CUDA on real data ~40 s (the CPU side: train-ae 4 sizes x
#                               2 epochs on 8k images dominates); resume x3 ~15 s; torchrun:
#                               2 processes x ~15 s
#   bench    ~160 s  (cap 235)  8 processes: sweep-lr seed ~35 s (4 lr x 50 epochs ~25 s + start),
#                               ours ~12 s; seeds 2 x ~13 s; train-ae seed 1 epoch x 4 sizes on 60k
#                               ~35 s, ours ~20 s; train-cnn seed ~17 s, ours ~12 s (last: no GPU
#                               goal depends on it, so a slow box loses it first)
#   summary  ~2 s    (cap 20)
#   total    ~300 s estimated, 455 s at most.
#
# CPU REHEARSAL: GPU_CHECK_DRY_RUN=1 GPU_CHECK_PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#   runs the same flow on the CPU in under 2 minutes: tiny stand-in data (benchmarks/gpu_data.py
#   --tiny), tests/test_cuda.py on the CPU (MLE6_TEST_DEVICE=cpu, MLE6_CHECK_QUICK=1), a 1-epoch
#   bench of sweep-lr, seeds and train-ae. It says DRY RUN at the top of its table and judges no
#   GPU goal. tests/test_gpu_check.py runs it.
#
# Knobs: OUT, GPU_CHECK_DRY_RUN, GPU_CHECK_PYTHON (python3), GPU_CHECK_BUDGET (455 s),
#        GPU_CHECK_DATA (gpu_data), GPU_CHECK_SITE (/tmp/site).

set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/benchmarks/gpu_check.sh
cd "$REPO" || exit 2

# ---------------------------------------------------------------- the steps (each runs as `gpu_check.sh --step NAME`: do_NAME)

do_setup() {
  if [[ $DRY == 1 ]]; then
    "$PY" benchmarks/gpu_data.py --tiny --dest "$DATA" || return
  fi
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
      || return
    echo "installed into $SITE: $(cd .whl && ls -- *.whl | tr '\n' ' ')"
  else
    echo "no .whl/ folder: nothing to install (torch-summary must already be importable)"
  fi
  if [[ -f $DATA/sign_data/X_train.npy ]]; then
    echo "data: $DATA ($(du -sh "$DATA" | cut -f1))"
  else
    echo "WARNING: no data in $DATA (make gpu-data, and carry gpu_data): real-data tests skip, SIGNS synthetic"
  fi
}

do_env() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu --format=csv
  else
    echo "nvidia-smi: not found"
  fi
  "$PY" benchmarks/gpu_summary.py env --write "$WORK/env.json"
}

do_tests() {
  local quick=()
  [[ $DRY == 1 ]] && quick=(MLE6_TEST_DEVICE=cpu MLE6_CHECK_QUICK=1)
  # CUBLAS_WORKSPACE_CONFIG before the first cuBLAS call: --deterministic can then be exact on CUDA
  env "${quick[@]}" MLE6_GPU_DATA="$DATA" MLE6_CHECK_RECORD="$OUT/cuda_checks.json" CUBLAS_WORKSPACE_CONFIG=:4096:8 \
    "$PY" -m pytest -v -rA -m cuda --durations=25 -p no:cacheprovider --continue-on-collection-errors \
    --junitxml="$OUT/junit.xml" tests
}

do_bench() {
  # CUDA: the issue's sizes (bench.py's defaults there: 50 SIGNS epochs; AE 10 epochs on 60k images),
  # the seed's AE run for 1 epoch and scaled; train-cnn last (no GPU goal depends on it)
  local sizes=() only=sweep-lr,seeds,train-ae,train-cnn
  if [[ $DRY == 1 ]]; then
    sizes=(--epochs 1 --ae-epochs 2 --ae-images 256 --threads 1)
    only=sweep-lr,seeds,train-ae
  fi
  "$PY" benchmarks/bench.py --device "$DEVICE" --only "$only" --seed-ae-epochs 1 "${sizes[@]}" \
    --data-dir "$DATA/sign_data" --mnist-root "$DATA/mnist-mini" --timeout 150 --out "$OUT/bench.json"
}

do_summary() {
  local dry=()
  [[ $DRY == 1 ]] && dry=(--dry-run)
  "$PY" benchmarks/gpu_summary.py report --out "$OUT" --steps "$STEPS" --env "$WORK/env.json" --data "$DATA" \
    --started "$START" --budget "$BUDGET" "${dry[@]}"
}

if [[ ${1:-} == --step ]]; then # a child: the parent exported the settings
  "do_$2"
  exit $?
fi

# ---------------------------------------------------------------- settings

START=$(date +%s)
DRY=${GPU_CHECK_DRY_RUN:-0}
if [[ $DRY == 0 || -z $DRY ]]; then DRY=0; else DRY=1; fi
PY=${GPU_CHECK_PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-455}
OUT=${OUT:-}
[[ -n $OUT ]] || OUT=$REPO/gpu_out
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
STEPS=$WORK/steps.tsv
: >"$STEPS"
LOG=$OUT/gpu_check.log
# only the files this script writes: a reused folder holds no stale results
rm -f "$LOG" "$OUT"/{pytest.log,junit.xml,cuda_checks.json,bench.json,summary.txt,gpu_check.json}
: >"$LOG"
if [[ $DRY == 1 ]]; then
  DATA=$WORK/data
  SITE=${GPU_CHECK_SITE:-$WORK/site}
  DEVICE=cpu
  export OMP_NUM_THREADS=1 # on a shared 2-core machine two OpenMP threads mostly wait (tests/conftest.py)
else
  DATA=${GPU_CHECK_DATA:-$REPO/gpu_data}
  SITE=${GPU_CHECK_SITE:-/tmp/site}
  DEVICE=cuda
fi
export START DRY PY BUDGET OUT WORK STEPS DATA SITE DEVICE
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1

say() { echo "$*" | tee -a "$LOG"; }

# step NAME CAP RESERVE [LOGFILE]: run do_NAME in a child bash under `timeout` (which signals its whole
# process group), limit = min(CAP, time left - RESERVE); record name, rc, seconds, limit
step() {
  local name=$1 cap=$2 reserve=$(($3 * BUDGET / 455)) extra=() now left limit t0 rc secs
  [[ $# -ge 4 ]] && extra=("$4")
  now=$(date +%s)
  left=$((START + BUDGET - reserve - now))
  limit=$((cap < left ? cap : left))
  [[ $name == summary ]] && ((limit < 10)) && limit=10 # the table always comes, even after a late step
  if ((limit < 5)); then
    say "== [$name] SKIPPED: ${left}s left after reserving ${reserve}s for the later steps"
    printf '%s\tskipped\t0\t0\n' "$name" >>"$STEPS"
    return
  fi
  say "== [$name] $(date -u +%H:%M:%S) limit ${limit}s"
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" bash "$SELF" --step "$name" 2>&1 | tee -a "$LOG" "${extra[@]}"
  rc=${PIPESTATUS[0]}
  ((rc == 124 || rc == 137)) && echo | tee -a "$LOG" "${extra[@]}" # a killed step may stop mid-line
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [[ $name == summary ]]; then # the table stays the last thing printed
    echo "== [$name] rc=$rc after ${secs}s" >>"$LOG"
  else
    say "== [$name] rc=$rc after ${secs}s"
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$limit" >>"$STEPS"
}

# ---------------------------------------------------------------- the run

say "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), OUT $OUT"
[[ $DRY == 1 ]] && say "DRY RUN on the CPU: a rehearsal of the flow; nothing here is a GPU result"

# caps and reserves (s, for the 455 s budget; another GPU_CHECK_BUDGET scales the reserves): a reserve
# is the later steps' minimum share plus 10 s for a killed step to die
step setup 30 410
step env 40 370
step tests 180 200 "$OUT/pytest.log"
step bench 235 25
step summary 20 0

failed=$(awk -F'\t' '$2 != "0" { print $1 }' "$STEPS" | tr '\n' ' ')
if [[ -n $failed ]]; then
  echo "gpu_check: steps not ok: ${failed}(see $LOG)"
  exit 1
fi
exit 0
