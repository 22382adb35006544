#!/usr/bin/env bash
# benchmarks/gpu_check.sh (`make gpu-check`): every check that needs a GPU, in one command on a box
# with one CUDA GPU (H100/H200 class), in at most 8 minutes. It measures and reports; it fixes
# nothing and claims nothing it did not measure. It needs no venv, no pip and no internet: any
# Python >= 3.10 with a CUDA build of torch and its torchvision. Everything else it needs (numpy,
# typer, rich, matplotlib, scipy, h5py, pillow, torch-summary, pytest) is either there already or
# carried as wheels in .whl/ (`make gpu-wheels GPU_PYTHON=3.12`, wherever PyPI can be reached), which
# it unpacks itself into $SITE; the first step checks every module and stops at once, listing what
# is missing and how to bring it, rather than failing step by step.
#
# Steps, in order, each under its own `timeout` (a stuck step is killed, recorded, and the next one
# runs), everything tee'd to $OUT/gpu_check.log ($OUT: the environment's, else ./gpu_out):
#   setup     benchmarks/gpu_env.py: the wheels of .whl/ that bring missing modules, unpacked into
#             $SITE (/tmp/site), PYTHONPATH=$SITE:<repo>; then every module imported: a missing one
#             stops the check here
#   env       nvidia-smi -L; Python, torch, CUDA, cuDNN, NCCL versions, TF32's state
#   graphs    pytest tests/test_graphs.py (graph capture and replay, a failure inside capture, the
#             first thing a GPU must show)
#   cuda      pytest -m "cuda and not torchrun" tests/test_cuda.py (fused sweep == separate runs,
#             graphed == eager, resume on CUDA, the training commands from the shell replaying
#             graphs, then, last, CPU == CUDA on the real data with TF32 off)
#   torchrun  pytest -m "cuda and torchrun" tests/test_cuda.py tests/test_distributed.py: torchrun at
#             world size 1 vs a plain process (sweep-lr's shards; train-ae --ddp, whose gradients go
#             through NCCL; the one-GPU run byte for byte under --deterministic); its subprocesses
#             end before the step's own limit (MLE6_CHECK_DEADLINE), so a hung launcher is a failed
#             test, not a killed step
#             -> pytest.log (the three steps), junit.xml (merged), cuda_checks.json (what each
#             test measured: differences, torchrun's overhead, whether graphs were used)
#             No -x anywhere: a first failure must not hide the other results. The tests are named
#             files: collecting tests/ would import every test's optional packages.
#   bench     benchmarks/bench.py --device cuda at the goals' sizes (50 SIGNS epochs; train-ae
#             4 latent sizes x 10 epochs x 60k images, the seed's AE timed for 1 epoch and scaled
#             x 10): every run of ours first (the command with its defaults, then at --save-every 0
#             for the training loop), then the seed pipeline's -> bench.json, rewritten after
#             every job, so a cut run keeps what it measured
#   tune      LEFT OUT unless GPU_CHECK_CAPS gives it a cap: with the steps above it does not fit the 8
#             minutes, so it is a run of its own (GPU_CHECK_CAPS=graphs=0,cuda=0,torchrun=0,bench=0,tune=300):
#             benchmarks/tune.py --device cuda --only tune,usual_optuna at its goal's size (32 trials of
#             lr x weight decay, at most 30 epochs, 8 fused; TPE + successive halving) -> tune.json.
#             Needs Optuna (an optional module: make gpu-wheels brings it)
#   summary   ONE table (benchmarks/gpu_summary.py, standard library only): each step and its time,
#             each pytest step's counts and failures, torchrun's overhead, the bench table, every
#             GPU goal met / MISSED / not measured next to the card's name, tune's goal on its own line
#             -> summary.txt, gpu_check.json. It runs even after a step timed out.
# 7 files land in $OUT (tune.json too when the tune step runs), no subfolders.
#
# ON THE GPU BOX: the repository (a clone or a copy of this tree), its data in gpu_data/, which
# `make gpu-data SIGNS_DATA=<SIGNS npy folder> MNIST_DIR=<folder with MNIST/raw>` fills (21.6 MiB:
# SIGNS npy arrays and mnist-mini), and .whl/ if the box's Python lacks a module. Then, from the
# repository:
#     make gpu-check                       (or: bash benchmarks/gpu_check.sh; OUT=dir for elsewhere)
# The table is the last thing printed, and summary.txt.
#
# TIME (H100/H200, estimated: torch import + CUDA init ~10 s per process, graph capture a few s per
# shape). Each step's limit is the smaller of its cap and what is left of BUDGET (455 s) after
# reserving the later steps' minimum, so the script ends before 480 s whatever hangs (a killed step
# gets 10 s more to die: counted in the reserves).
#   setup     ~4 s    (cap 30)   unpacking the wheels; importing every module once
#   env       ~10 s   (cap 40)   one torch import + CUDA init
#   graphs    ~25 s   (cap 60)   torch + CUDA ~10 s, the graphed fits
#   cuda      ~100 s  (cap 150)  fused ~5 s; graphed vs eager ~10 s; resume x3 ~15 s; a tune study
#                                and 3 train-cnn runs ~10 s (skipped without Optuna); the commands
#                                from the shell 3 x ~8 s; CPU vs CUDA on real data ~35 s (its CPU
#                                halves: train-cnn and sweep-lr 2 epochs on 960 images, train-ae
#                                2 sizes x 1 epoch x 2,000 images; the CPU rehearsal times them)
#   torchrun  ~85 s   (cap 120)  sweep-lr plain + torchrun ~30 s, train-ae --ddp plain + torchrun
#                                ~25 s, the --deterministic one-GPU pair ~30 s
#   bench     ~190 s  (cap 240)  ours: sweep-lr 2 x ~8 s, seeds 2 x ~10 s, train-ae 2 x ~20 s,
#                                train-cnn 2 x ~8 s; then the seed pipeline: sweep ~35 s, one-seed
#                                sweep ~8 s, AE 1 epoch x 4 sizes on 60k ~40 s, train-cnn ~12 s
#   summary   ~2 s    (cap 20)
#   total     ~415 s estimated, 455 s at most.
#   tune, alone (the other steps at cap 0): setup, env ~15 s; tune ~100 s estimated (the usual way's
#             153 epochs of DataLoader and eager steps ~60 s; the fused study ~30 s, its graph captures
#             included; torch + CUDA ~10 s); summary ~2 s
#
# CPU REHEARSAL: GPU_CHECK_DRY_RUN=1 GPU_CHECK_PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#   runs the same flow on the CPU (MLE6_TEST_DEVICE=cpu: the "GPU" side of every comparison is the
#   CPU too). With the real data in gpu_data/ (make gpu-data) the tests run at the check's own sizes,
#   so each step's time shows what its CPU halves cost; without it, tiny stand-in data
#   (benchmarks/gpu_data.py --tiny) and quick sizes (MLE6_CHECK_QUICK=1), in about a minute. The
#   bench runs 1 epoch of sweep-lr, seeds and train-ae with the loop runs either way. It says DRY
#   RUN at the top of its table and judges no GPU goal. tests/test_gpu_check.py runs it.
#
# Knobs: OUT, GPU_CHECK_DRY_RUN, GPU_CHECK_PYTHON (python3), GPU_CHECK_BUDGET (455 s),
#        GPU_CHECK_DATA (gpu_data), GPU_CHECK_SITE (/tmp/site),
#        GPU_CHECK_CAPS ("step=seconds,...": another cap for a step; 0 leaves it out).

set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/benchmarks/gpu_check.sh
cd "$REPO" || exit 2

# ---------------------------------------------------------------- the steps (each runs as `gpu_check.sh --step NAME`: do_NAME)

do_setup() {
  # the wheels first (a wheel is a zip: no pip, no network), then every module checked at once: a
  # missing one stops the check here, in seconds, with the list and how to bring them
  "$PY" benchmarks/gpu_env.py install --wheels .whl --target "$SITE" || return
  "$PY" benchmarks/gpu_env.py check || return
  if [[ $TINY == 1 ]]; then
    "$PY" benchmarks/gpu_data.py --tiny --dest "$DATA" || return
  fi
  if [[ -f $DATA/sign_data/X_train.npy ]]; then
    echo "data: $DATA ($(du -sh "$DATA" | cut -f1))$([[ $TINY == 1 ]] && echo ', tiny stand-ins')"
  else
    echo "WARNING: no data in $DATA (make gpu-data): real-data tests skip, SIGNS synthetic"
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

# pytest_step NAME ARGS...: one pytest run; its log and junit file go to $WORK (the summary reads them)
pytest_step() {
  local name=$1 quick=()
  shift
  [[ $DRY == 1 ]] && quick=(MLE6_TEST_DEVICE=cpu)
  [[ $TINY == 1 ]] && quick+=(MLE6_CHECK_QUICK=1)
  # CUBLAS_WORKSPACE_CONFIG before the first cuBLAS call: --deterministic can then be exact on CUDA;
  # MLE6_CHECK_DEADLINE: the tests' subprocesses end before this step's limit
  env "${quick[@]}" MLE6_GPU_DATA="$DATA" MLE6_CHECK_RECORD="$OUT/cuda_checks.json" CUBLAS_WORKSPACE_CONFIG=:4096:8 \
    MLE6_CHECK_DEADLINE="$STEP_DEADLINE" "$PY" -m pytest -v -rfEs --durations=15 -p no:cacheprovider \
    --junitxml="$WORK/junit-$name.xml" "$@"
}

# named files: collecting the whole folder would import every test's optional packages, and cost seconds
do_graphs() { pytest_step graphs tests/test_graphs.py; }
do_cuda() { pytest_step cuda -m "cuda and not torchrun" tests/test_cuda.py; }
do_torchrun() { pytest_step torchrun -m "cuda and torchrun" tests/test_cuda.py tests/test_distributed.py; }

do_bench() {
  # CUDA: the goals' sizes (bench.py's defaults there: 50 SIGNS epochs; AE 10 epochs on 60k images),
  # the seed's AE run for 1 epoch and scaled; train-cnn last (no GPU goal depends on it)
  local sizes=() only=sweep-lr,seeds,train-ae,train-cnn
  if [[ $DRY == 1 ]]; then
    sizes=(--epochs 1 --ae-epochs 2 --ae-images 256 --threads 1)
    only=sweep-lr,seeds,train-ae
  fi
  "$PY" benchmarks/bench.py --device "$DEVICE" --only "$only" --seed-ae-epochs 1 --loop-runs on "${sizes[@]}" \
    --data-dir "$DATA/sign_data" --mnist-root "$DATA/mnist-mini" --timeout 150 --out "$OUT/bench.json"
}

do_tune() {
  # the goal's size on real SIGNS (synthetic without gpu_data/); the rehearsal: 2 trials of 1 epoch.
  # Written whole or not at all: a cut run leaves no half document
  local sizes=(--trials 32 --epochs 30 --parallel 8) data=(--synthetic)
  [[ -f $DATA/sign_data/X_train.npy ]] && data=(--data-dir "$DATA/sign_data")
  [[ $DRY == 1 ]] && sizes=(--trials 2 --epochs 1 --parallel 2)
  "$PY" benchmarks/tune.py --device "$DEVICE" --only tune,usual_optuna "${sizes[@]}" "${data[@]}" --json \
    >"$WORK/tune.json" && mv "$WORK/tune.json" "$OUT/tune.json"
}

do_summary() {
  local dry=()
  [[ $DRY == 1 ]] && dry=(--dry-run)
  "$PY" benchmarks/gpu_summary.py report --out "$OUT" --steps "$STEPS" --tests-dir "$WORK" --env "$WORK/env.json" \
    --data "$DATA" --started "$START" --budget "$BUDGET" "${dry[@]}"
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
rm -f "$LOG" "$OUT"/{pytest.log,junit.xml,cuda_checks.json,bench.json,tune.json,summary.txt,gpu_check.json}
: >"$LOG"
TINY=0
DATA=${GPU_CHECK_DATA:-$REPO/gpu_data}
if [[ $DRY == 1 ]]; then
  # the real data when it is here (make gpu-data): the CPU halves then run at the check's own sizes
  # and their times are the GPU box's CPU side, measured; else tiny stand-ins, and quick sizes
  [[ -f $DATA/sign_data/X_train.npy ]] || { DATA=$WORK/data; TINY=1; }
  SITE=${GPU_CHECK_SITE:-$WORK/site}
  DEVICE=cpu
  export OMP_NUM_THREADS=1 # on a shared 2-core machine two OpenMP threads mostly wait (tests/conftest.py)
else
  SITE=${GPU_CHECK_SITE:-/tmp/site}
  DEVICE=cuda
fi
export START DRY TINY PY BUDGET OUT WORK STEPS DATA SITE DEVICE
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1

say() { echo "$*" | tee -a "$LOG"; }

# cap_of NAME DEFAULT: the step's cap, or the one GPU_CHECK_CAPS gives it ("cuda=200,bench=0")
cap_of() {
  local item caps=${GPU_CHECK_CAPS:-}
  for item in ${caps//,/ }; do
    [[ ${item%%=*} == "$1" && ${item#*=} =~ ^[0-9]+$ ]] && { echo "${item#*=}"; return; }
  done
  echo "$2"
}

# step NAME CAP RESERVE: run do_NAME in a child bash under `timeout` (which signals its whole process
# group: pytest's and the bench's subprocesses too), limit = min(CAP, time left - RESERVE); record
# name, rc, seconds, limit. The pytest steps also keep their own log in $WORK and add it to pytest.log.
step() {
  local name=$1 cap reserve=$(($3 * BUDGET / 455)) extra=() now left limit t0 rc secs
  cap=$(cap_of "$name" "$2")
  [[ $name == graphs || $name == cuda || $name == torchrun ]] && extra=("$OUT/pytest.log" "$WORK/pytest-$name.log")
  if ((cap == 0)) && [[ $name != summary ]]; then
    if (($2 == 0)); then # a step of its own runs (tune): not part of the 8-minute check
      say "== [$name] not run (a run of its own: GPU_CHECK_CAPS=graphs=0,cuda=0,torchrun=0,bench=0,$name=300)"
      printf '%s\toptional\t0\t0\n' "$name" >>"$STEPS"
    else
      say "== [$name] left out (GPU_CHECK_CAPS)"
      printf '%s\toff\t0\t0\n' "$name" >>"$STEPS"
    fi
    return
  fi
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
  STEP_DEADLINE=$((now + limit)) timeout -k 10 "$limit" bash "$SELF" --step "$name" 2>&1 | tee -a "$LOG" "${extra[@]}"
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
# is the later steps' minimum share plus 10 s for a killed step to die. The bench keeps at least
# 130 s (every run of ours, and the seed's sweep) whatever the tests do before it.
step setup 30 415
if [[ $(awk -F'\t' '$1 == "setup" { print $2 }' "$STEPS") != 0 ]]; then
  # nothing else can run without those modules: the list above is what to bring
  echo "gpu_check: stopped after setup (see above)" | tee -a "$LOG"
  exit 1
fi
step env 40 375
step graphs 60 300
step cuda 150 195
step torchrun 120 150
step bench 240 25
step tune 0 25 # left out unless GPU_CHECK_CAPS gives it a cap
step summary 20 0

# a step left out on purpose (GPU_CHECK_CAPS, or one of its own runs') is not a failure; one without time left is
failed=$(awk -F'\t' '$2 != "0" && $2 != "off" && $2 != "optional" { print $1 }' "$STEPS" | tr '\n' ' ')
if [[ -n $failed ]]; then
  echo "gpu_check: steps not ok: ${failed}(see $LOG)"
  exit 1
fi
exit 0
