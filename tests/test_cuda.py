"""CUDA twins of the CPU equivalence tests: what `make gpu-check` runs on a GPU box.

Every test here is marked `cuda` and runs on MLE6_TEST_DEVICE (default `cuda`); without CUDA they
skip. The GPU check's CPU rehearsal (GPU_CHECK_DRY_RUN=1) sets MLE6_TEST_DEVICE=cpu so the code
runs end to end on a CPU too: there the "GPU" side is the CPU and nothing is a GPU result.
Real data come from MLE6_GPU_DATA (default gpu_data/, see benchmarks/gpu_data.py); the tests
that need them skip without. With MLE6_CHECK_RECORD=<file.json> each test also writes what it
measured (largest differences, whether graphs were used, torchrun's overhead) there, so a passing
run still says how close it was. The CPU halves of the CPU-vs-device comparisons are as small as
still proves the point (train-ae: 2 latent sizes, 1 epoch, 2,000 images) and run last, so a step
cut by its time limit loses them first; MLE6_CHECK_QUICK=1 (a rehearsal on stand-in data) shrinks
the torchrun test to the small npy layout for 1 epoch. With
MLE6_CHECK_DEADLINE=<unix time> (the check's step limit) every subprocess here ends before it, so
a hung process fails its test and the step still reports. The torchrun test is also marked
`torchrun`: the check runs it in a step of its own, after the others.

TF32: cuDNN convolutions may use TF32 by default on Ampere and later GPUs
(`torch.backends.cudnn.allow_tf32` is True), about 3 decimal digits. Every comparison here is
between different kernels (CPU vs CUDA, the grouped fused layout vs separate models) and its
tolerances below are derived for float32, so the `_float32_only` fixture turns TF32 off for cuDNN
and cuBLAS in this process for every test, and restores it after. The tests that run mle6 as a
subprocess compare CUDA with CUDA (the same kernels, TF32 or not); a subprocess compared with the
CPU would need NVIDIA_TF32_OVERRIDE=0 in its environment (mle6 has no switch of its own).

Graphs: a training command's summary.json says whether its steps replayed CUDA graphs
(`"graphs"`). On CUDA (unless MLE6_GRAPHS=0) every training command here must say true; on the
CPU false. A summary without the key passes off CUDA only: on a GPU, that is the point.

Tolerances, and why:

- fused vs separate runs, one device: the per-member layout runs a separate model's kernels,
  so it must agree to rel 1e-4 (cudnn.deterministic on; exact on the CPU). The grouped layout
  (the CUDA default) sums in another order: last-bit differences, which Adam amplifies (it
  divides each gradient by its own running RMS, so a near-zero gradient's rounding becomes a
  step of up to lr): rel 2e-3 on losses after 2 epochs (the CPU twin in test_engine.py holds
  1e-3 after one).
- CPU vs CUDA on the real data, 2 epochs: other kernels (cuDNN vs oneDNN/ATen) and on CUDA the
  grouped layout; the same Adam amplification over 30 (SIGNS) or 125 (MNIST) steps: rel 2e-2 on
  losses, accuracies within ACC_SLACK images of the split. A learning rate of 1e-2 or more is
  chaotic under Adam (epoch 1 of lr 1e-1 ends near loss 30): for those only the status and the
  epochs done must agree; their differences are recorded, not asserted.
- graph-captured vs eager steps: rel 1e-4 (as tests/test_graphs.py).
- resume on CUDA: the resumed run recaptures the same graphs, but cuDNN's default algorithms may
  accumulate with atomics: rel 1e-3 on losses. With --deterministic (cudnn.deterministic,
  torch.use_deterministic_algorithms, CUBLAS_WORKSPACE_CONFIG set) metrics.csv must be
  byte-identical.
- torchrun (world size 1) vs a plain process, same device: the same kernels, atomics aside:
  rel 1e-3 on losses (chaotic learning rates as above). Its whole-process wall time is recorded
  (MLE6_CHECK_RECORD, and the check's summary), not asserted: torchrun starts a second
  interpreter that imports torch itself, and timing belongs to the bench.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mle6cli.data.splits import Split
from mle6cli.engine import fused as fz
from mle6cli.engine.interrupt import Interrupted
from mle6cli.engine.loop import MemberState, fit
from mle6cli.models import CNNClassifier
from tests.conftest import REPO, StopAfter, subprocess_env

DEVICE = torch.device(os.environ.get("MLE6_TEST_DEVICE") or "cuda")
GPU_DATA = Path(os.environ.get("MLE6_GPU_DATA") or REPO / "gpu_data")
RECORD = os.environ.get("MLE6_CHECK_RECORD")
QUICK = os.environ.get("MLE6_CHECK_QUICK") == "1"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        DEVICE.type == "cuda" and not torch.cuda.is_available(),
        reason="needs a CUDA GPU (MLE6_TEST_DEVICE=cpu runs these on the CPU)",
    ),
]

FUSED_REL, PER_MEMBER_REL = 2e-3, 1e-4
DEVICES_REL, ACC_SLACK = 2e-2, 3  # CPU vs CUDA: losses, and accuracy within this many images
GRAPH_REL, RESUME_REL, TORCHRUN_REL = 1e-4, 1e-3, 1e-3
DDP_REL = 1e-2  # train-ae --ddp vs one process: what tests/test_distributed.py holds the CPU ranks to
CHAOTIC_LR = 1e-2
# what summary.json must say about CUDA graphs for a training command run here on DEVICE
GRAPHS_EXPECTED = DEVICE.type == "cuda" and os.environ.get("MLE6_GRAPHS", "1") != "0"


@pytest.fixture(autouse=True)
def _determinism_reset():
    """A test may turn on deterministic algorithms (set_seed does, for the whole process): undo it."""
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = False


@pytest.fixture(autouse=True)
def _float32_only():
    """TF32 off for cuDNN and cuBLAS (see the module docstring), restored after the test."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def tf32() -> dict:
    """TF32's state now, for the record: off here unless something turned it back on."""
    return {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}


def time_left(default: float, share: float = 1.0) -> float:
    """A subprocess's timeout: `default`, or `share` of what is left before MLE6_CHECK_DEADLINE less
    15 s (for pytest to report), so that a hung process fails its test before the step is killed."""
    deadline = os.environ.get("MLE6_CHECK_DEADLINE")
    if not deadline:
        return default
    return max(1.0, min(default, (float(deadline) - time.time() - 15) * share))


def run_cli(argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout:.0f} s: {' '.join(map(str, argv[:6]))} ...")


def graphs_of(run_dir: Path) -> bool | None:
    """summary.json's `graphs`: True when the run's training steps replayed CUDA graphs."""
    return json.loads((Path(run_dir) / "summary.json").read_text()).get("graphs")


def assert_graphs(run_dir: Path, expected: bool, what: str) -> bool | None:
    value = graphs_of(run_dir)
    if value is None and DEVICE.type != "cuda":
        return None  # an mle6 that does not report it yet: not reported, on a rehearsal only
    assert value is expected, f"{what}: summary.json says graphs={value!r}, expected {expected}"
    return value


def record(name: str, **values) -> None:
    """Write what a test measured to MLE6_CHECK_RECORD (one JSON object, a key per test)."""
    if not RECORD:
        return
    path = Path(RECORD)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = values
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- comparing metrics


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def row_differences(a: list[dict], b: list[dict]) -> dict:
    """The largest relative loss difference and absolute accuracy difference between two histories."""
    assert len(a) == len(b), f"{len(a)} vs {len(b)} epochs"
    loss, acc = 0.0, 0.0
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            x, y = float(ra[key]), float(rb[key])
            if key == "epoch":
                assert x == y
            elif key.endswith("_acc"):
                acc = max(acc, abs(x - y))
            else:
                loss = max(loss, _rel(x, y))
    return {"max_rel_loss": loss, "max_abs_acc": acc}


def assert_close(diff: dict, rel: float, acc: float, what: str) -> None:
    assert diff["max_rel_loss"] <= rel, f"{what}: losses differ by rel {diff['max_rel_loss']:.3g} > {rel:g}"
    assert diff["max_abs_acc"] <= acc + 1e-12, f"{what}: accuracies differ by {diff['max_abs_acc']:.4g} > {acc:.4g}"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def signs_like(n: int, seed: int = 1) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8)
    return Split(x.to(DEVICE), torch.randint(0, 6, (n,), generator=g).to(DEVICE))


# ---------------------------------------------------------------- the fused sweep, member by member


@pytest.mark.parametrize("per_member", [False, True], ids=["grouped", "per-member"])
def test_fused_sweep_equals_separate_runs(per_member):
    """Four members (3 lrs, 2 seeds: two batch orders) in one fit vs each fitted alone, all on DEVICE."""
    torch.backends.cudnn.deterministic = True
    lrs, seeds = [1e-3, 1e-4, 1e-5, 1e-3], [5, 5, 5, 9]
    data, evals = signs_like(40), {"val": signs_like(12, seed=2)}  # batches of 16, 16 and a ragged 8
    torch.manual_seed(3)
    starts = [CNNClassifier().state_dict() for _ in lrs]

    def members(indices, layout):
        models = []
        for j in indices:
            model = CNNClassifier()
            model.load_state_dict(starts[j])
            models.append(model.to(DEVICE))
        return fz.FusedCNNMembers(models, [lrs[j] for j in indices], per_member=layout)

    together = [MemberState(seed=s) for s in seeds]
    fit(members(range(len(lrs)), per_member), together, data, evals, epochs=2, batch_size=16)
    diffs = []
    for j, seed in enumerate(seeds):
        alone = MemberState(seed=seed)
        fit(members([j], None), [alone], data, evals, epochs=2, batch_size=16)
        assert together[j].status == alone.status == "completed"
        diffs.append(row_differences(alone.history, together[j].history))
    record(f"fused_sweep_{'per_member' if per_member else 'grouped'}", device=str(DEVICE), members=diffs, tf32=tf32())
    for j, diff in enumerate(diffs):
        assert_close(diff, PER_MEMBER_REL if per_member else FUSED_REL, 1 / 12, f"member {j} (lr {lrs[j]:g})")


# ---------------------------------------------------------------- graphs, through the command


def test_sweep_graphed_equals_eager(tmp_path, small, monkeypatch):
    """sweep-lr with CUDA graphs (the default) vs MLE6_GRAPHS=0, same device (on a CPU both are eager)."""
    from mle6cli.tasks.classifier import sweep_lr

    torch.backends.cudnn.deterministic = True
    options = {"data_dir": str(small), "lrs": [1e-3, 1e-4], "epochs": 2, "batch_size": 16, "device": str(DEVICE)}
    sweep_lr(options, out=tmp_path / "graphed")
    monkeypatch.setenv("MLE6_GRAPHS", "0")
    sweep_lr(options, out=tmp_path / "eager")
    diffs = {}
    for lr in ("1e-03", "1e-04"):
        eager = read_csv(tmp_path / "eager" / f"lr_{lr}" / "metrics.csv")
        graphed = read_csv(tmp_path / "graphed" / f"lr_{lr}" / "metrics.csv")
        diffs[lr] = row_differences(eager, graphed)
    graphs = {"graphed": graphs_of(tmp_path / "graphed"), "eager": graphs_of(tmp_path / "eager")}
    record("sweep_graphed_vs_eager", device=str(DEVICE), members=diffs, graphs=graphs)
    assert_graphs(tmp_path / "graphed", GRAPHS_EXPECTED, "sweep-lr by default")
    assert_graphs(tmp_path / "eager", False, "sweep-lr with MLE6_GRAPHS=0")
    for lr, diff in diffs.items():
        assert_close(diff, GRAPH_REL, 1 / 12, f"lr {lr}")


# ---------------------------------------------------------------- resume after an interrupt


@pytest.mark.parametrize(
    ("command", "deterministic"),
    [("train-cnn", False), ("sweep-lr", False), ("train-cnn", True)],
    ids=["train-cnn", "sweep-lr", "train-cnn-deterministic"],
)
def test_resume_on_the_device_matches_an_uninterrupted_run(tmp_path, small, command, deterministic):
    """Stopped mid-epoch 2 (after 5 steps and epoch ends), then resumed: the same metrics as one go."""
    from mle6cli.tasks.classifier import sweep_lr, train_cnn

    task = train_cnn if command == "train-cnn" else sweep_lr
    options = {"data_dir": str(small), "epochs": 3, "batch_size": 16, "seeds": [3], "device": str(DEVICE)}
    options |= {"lr": 1e-3} if command == "train-cnn" else {"lrs": [1e-3, 1e-4]}
    options["deterministic"] = deterministic
    task(options, out=tmp_path / "whole")
    with pytest.raises(Interrupted):
        task(options, out=tmp_path / "cut", stop=StopAfter(5))
    assert (tmp_path / "cut" / "resume.pt").is_file()
    summary = task({}, resume=tmp_path / "cut")
    assert summary["resumed"] == 1
    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("metrics.csv"))
    assert files and files == sorted(p.relative_to(tmp_path / "cut") for p in (tmp_path / "cut").rglob("metrics.csv"))
    diffs, identical = {}, True
    for rel in files:
        whole, cut = (tmp_path / "whole" / rel).read_bytes(), (tmp_path / "cut" / rel).read_bytes()
        identical &= whole == cut
        diffs[str(rel)] = row_differences(read_csv(tmp_path / "whole" / rel), read_csv(tmp_path / "cut" / rel))
    graphs = {"whole": graphs_of(tmp_path / "whole"), "resumed": graphs_of(tmp_path / "cut")}
    name = f"resume_{command}{'_deterministic' if deterministic else ''}"
    record(name, device=str(DEVICE), identical=identical, graphs=graphs)
    assert_graphs(tmp_path / "whole", GRAPHS_EXPECTED, f"{command} in one go")
    assert_graphs(tmp_path / "cut", GRAPHS_EXPECTED, f"{command} resumed")
    if deterministic:
        assert identical, f"--deterministic on {DEVICE}: resumed metrics.csv not byte-identical: {diffs}"
    for rel, diff in diffs.items():
        assert_close(diff, RESUME_REL, 1 / 12, str(rel))


# ---------------------------------------------------------------- a study's trials, fused on the device


def test_a_study_on_the_device_trains_each_trial_as_train_cnn_does(tmp_path, small):
    """`mle6 tune train-cnn` on DEVICE, three trials fused in one model (on CUDA the grouped layout, in CUDA
    graphs): the one whose learning rate diverges is frozen inside the step and leaves at its epoch's end
    (the way a pruned trial leaves: its slot idle, the step captured again), and each of the other two is
    train-cnn on DEVICE at its learning rate, to the fused layout's tolerance."""
    pytest.importorskip("optuna")
    from mle6cli.tasks.classifier import TrainingDiverged, train_cnn
    from mle6cli.tasks.specs import RunParams
    from mle6cli.tasks.tune_targets import TUNE_SPECS

    torch.backends.cudnn.deterministic = True
    base = {"data_dir": str(small), "epochs": 2, "batch_size": 16, "device": str(DEVICE)}
    study = {"seeds": [3], "trials": 3, "parallel": 3, "space": ["lr=choice:1e-3,3e-4,1e10"], "sampler": "grid"}
    summary = TUNE_SPECS["train-cnn"].run(dict(base, **study, pruner="none"), RunParams(out=tmp_path / "study"))
    with open(tmp_path / "study" / "trials.csv", newline="") as fh:
        rows = {float(r["lr"]): r for r in csv.DictReader(fh)}
    assert {lr: r["state"] for lr, r in rows.items()} == {1e-3: "complete", 3e-4: "complete", 1e10: "diverged"}
    diffs = {}
    for lr in (1e-3, 3e-4):
        alone = tmp_path / f"alone_{lr:g}"
        train_cnn(dict(base, lr=lr, seed=3), out=alone)
        trial = tmp_path / "study" / "trials" / rows[lr]["number"] / "metrics.csv"
        diffs[f"{lr:g}"] = row_differences(read_csv(alone / "metrics.csv"), read_csv(trial))
    with pytest.raises(TrainingDiverged):
        train_cnn(dict(base, lr=1e10, seed=3), out=tmp_path / "alone_1e10")
    record("tune_trials_vs_train_cnn", device=str(DEVICE), trials=diffs, graphs=graphs_of(tmp_path / "study"))
    assert_graphs(tmp_path / "study", GRAPHS_EXPECTED, "tune train-cnn")
    assert summary["states"] == {"complete": 2, "pruned": 0, "diverged": 1, "failed": 0}
    for lr, diff in diffs.items():
        assert_close(diff, FUSED_REL, 1 / 12, f"trial at lr {lr}")


# ---------------------------------------------------------------- the commands, as a shell runs them


@pytest.mark.parametrize("command", ["train-cnn", "sweep-lr", "train-ae"])
def test_training_commands_from_the_shell_replay_graphs(tmp_path, small, request, command):
    """`mle6 <command> --device DEVICE` in its own process, with its defaults: it finishes, its steps
    replay CUDA graphs on CUDA (summary.json's "graphs"), and no capture failure was noted."""
    if command == "train-ae":
        data = ["--data-dir", str(request.getfixturevalue("real_mnist")), "--latent-dims", "3"]
    else:
        data = ["--data-dir", str(small), "--batch-size", "16"]
        data += ["--lrs", "1e-3,1e-4"] if command == "sweep-lr" else ["--lr", "1e-3"]
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "mle6cli", command, *data, "--epochs", "1", "--device", str(DEVICE)]
    env = subprocess_env()
    env.pop("MLE6_GRAPHS", None)  # the default: graphs wherever they can be used
    started = time.perf_counter()
    proc = run_cli([*argv, "--out", str(out), "--json"], time_left(240), env=env, cwd=tmp_path)
    wall = time.perf_counter() - started
    assert proc.returncode == 0, f"{command} failed:\n{proc.stderr[-3000:]}"
    notes = [line for line in proc.stderr.splitlines() if line.startswith("Note:")]
    record(f"cli_{command}", device=str(DEVICE), graphs=graphs_of(out), notes=notes, wall_seconds=wall)
    assert not [n for n in notes if "graph" in n.lower()], f"{command}: {notes}"
    assert_graphs(out, DEVICE.type == "cuda", f"mle6 {command} on {DEVICE}")


# ---------------------------------------------------------------- the CPU and DEVICE on the real data


@pytest.fixture(scope="module")
def real_signs() -> Path:
    path = GPU_DATA / "sign_data"
    if not (path / "X_train.npy").is_file():
        pytest.skip(f"no SIGNS arrays in {path} (make gpu-data)")
    return path


@pytest.fixture(scope="module")
def real_mnist() -> Path:
    raw = GPU_DATA / "mnist-mini" / "MNIST" / "raw"
    if not raw.is_dir() or not any(raw.glob("train-images-idx3-ubyte*")):
        pytest.skip(f"no MNIST files in {raw} (make gpu-data)")
    return GPU_DATA / "mnist-mini"


def _slack(count: int) -> float:
    return ACC_SLACK / count


def test_train_cnn_on_the_device_equals_the_cpu(tmp_path, real_signs):
    from mle6cli.tasks.classifier import train_cnn

    options = {"data_dir": str(real_signs), "lr": 1e-3, "epochs": 2, "batch_size": 64, "seeds": [42]}
    cpu = train_cnn({**options, "device": "cpu"}, out=tmp_path / "cpu")
    dev = train_cnn({**options, "device": str(DEVICE)}, out=tmp_path / "dev")
    diff = row_differences(read_csv(tmp_path / "cpu" / "metrics.csv"), read_csv(tmp_path / "dev" / "metrics.csv"))
    test = {"test_loss": _rel(cpu["test_loss"], dev["test_loss"]), "test_acc": abs(cpu["test_acc"] - dev["test_acc"])}
    graphs = {"cpu": graphs_of(tmp_path / "cpu"), "device": graphs_of(tmp_path / "dev")}
    record("train_cnn_cpu_vs_device", device=str(DEVICE), metrics=diff, test=test, graphs=graphs, tf32=tf32())
    assert_graphs(tmp_path / "cpu", False, "train-cnn on the CPU")
    assert_graphs(tmp_path / "dev", GRAPHS_EXPECTED, f"train-cnn on {DEVICE}")
    assert_close(diff, DEVICES_REL, _slack(120), "train-cnn metrics.csv")  # val: 120 images
    assert test["test_loss"] <= DEVICES_REL and test["test_acc"] <= _slack(120) + 1e-12


def test_sweep_lr_on_the_device_equals_the_cpu(tmp_path, real_signs):
    from mle6cli.tasks.classifier import sweep_lr

    lrs = [1e-1, 1e-3, 1e-4, 1e-5]
    options = {"data_dir": str(real_signs), "lrs": lrs, "epochs": 2, "batch_size": 64, "seeds": [42]}
    cpu = sweep_lr({**options, "device": "cpu"}, out=tmp_path / "cpu")
    dev = sweep_lr({**options, "device": str(DEVICE)}, out=tmp_path / "dev")
    diffs, checked = {}, []
    for a, b in zip(cpu["runs"], dev["runs"], strict=True):
        assert a["lr"] == b["lr"] and (a["status"], a["epochs_done"]) == (b["status"], b["epochs_done"]), a["lr"]
        folder = Path(a["metrics"])
        diff = row_differences(read_csv(tmp_path / "cpu" / folder), read_csv(tmp_path / "dev" / folder))
        diffs[str(a["lr"])] = diff
        if a["lr"] < CHAOTIC_LR:
            checked.append((a["lr"], diff))
    graphs = {"cpu": graphs_of(tmp_path / "cpu"), "device": graphs_of(tmp_path / "dev")}
    record(
        "sweep_lr_cpu_vs_device",
        device=str(DEVICE),
        members=diffs,
        chaotic_not_asserted=f"lr >= {CHAOTIC_LR:g}",
        graphs=graphs,
        tf32=tf32(),
    )
    assert_graphs(tmp_path / "cpu", False, "sweep-lr on the CPU")
    assert_graphs(tmp_path / "dev", GRAPHS_EXPECTED, f"sweep-lr on {DEVICE}")
    for lr, diff in checked:
        assert_close(diff, DEVICES_REL, _slack(120), f"sweep-lr lr {lr:g}")


def first_images(source: Path, dest: Path, n_train: int) -> Path:
    """An MNIST folder holding the first `n_train` training images of `source` (and all its test
    images): the CPU side of a comparison needs no more to show the kernels agree."""
    raw_in, raw_out = source / "MNIST" / "raw", dest / "MNIST" / "raw"
    raw_out.mkdir(parents=True)
    for name, item in (("train-images-idx3-ubyte", 784), ("train-labels-idx1-ubyte", 1), ("t10k-images-idx3-ubyte", 0),
                       ("t10k-labels-idx1-ubyte", 0)):  # fmt: skip
        plain, packed = raw_in / name, raw_in / f"{name}.gz"
        data = plain.read_bytes() if plain.is_file() else gzip.decompress(packed.read_bytes())
        if item:  # the header's count, then that many items (IDX: images 16 bytes of header, labels 8)
            header = 16 if item == 784 else 8
            count = min(n_train, struct.unpack(">i", data[4:8])[0])
            data = data[:4] + struct.pack(">i", count) + data[8:header] + data[header : header + count * item]
        (raw_out / name).write_bytes(data)
    return dest


AE_DIMS, AE_EPOCHS, AE_IMAGES = [3, 10], 1, 2000  # the CPU side of train-ae: a few seconds on a GPU box's cores


def test_train_ae_on_the_device_equals_the_cpu(tmp_path, real_mnist):
    from mle6cli.tasks.autoencoders import train_ae

    data = first_images(real_mnist, tmp_path / "mnist", AE_IMAGES)
    options = {"data_dir": str(data), "latent_dims": AE_DIMS, "epochs": AE_EPOCHS, "download": False}
    cpu = train_ae({**options, "device": "cpu"}, out=tmp_path / "cpu")
    dev = train_ae({**options, "device": str(DEVICE)}, out=tmp_path / "dev")
    diffs = {}
    for a, b in zip(cpu.runs, dev.runs, strict=True):
        assert (a.latent_dim, a.status, a.collapsed, a.retries) == (b.latent_dim, b.status, b.collapsed, b.retries)
        name = f"metrics_d{a.latent_dim}.csv"
        diffs[a.latent_dim] = row_differences(read_csv(tmp_path / "cpu" / name), read_csv(tmp_path / "dev" / name))
    graphs = {"cpu": graphs_of(tmp_path / "cpu"), "device": graphs_of(tmp_path / "dev")}
    record("train_ae_cpu_vs_device", device=str(DEVICE), dims=diffs, graphs=graphs, tf32=tf32())
    assert_graphs(tmp_path / "cpu", False, "train-ae on the CPU")
    assert_graphs(tmp_path / "dev", GRAPHS_EXPECTED, f"train-ae on {DEVICE}")
    for dim, diff in diffs.items():
        assert_close(diff, DEVICES_REL, 0.0, f"train-ae d={dim}")


# ---------------------------------------------------------------- torchrun at world size 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json_doc(stdout: str) -> dict:
    """The --json document, also where a launcher prefixed each line with its rank ("[rank0]:")."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        return json.loads("\n".join(re.sub(r"^\[[^\]]*\]:", "", line) for line in stdout.splitlines()))


@pytest.mark.torchrun
def test_torchrun_world_size_1_equals_the_plain_run(tmp_path, small):
    """`torchrun --nproc-per-node 1 -m mle6cli sweep-lr` (NCCL on CUDA) vs the plain process: the same
    metrics. How much longer the whole process takes is recorded, not asserted."""
    data = (
        ["--data-dir", str(small), "--batch-size", "16", "--epochs", "1"] if QUICK else ["--synthetic", "--epochs", "2"]
    )
    common = ["sweep-lr", *data, "--device", str(DEVICE), "--json"]
    plain = [sys.executable, "-m", "mle6cli", *common, "--out", str(tmp_path / "plain")]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1"]
    launched = [*launcher, "--master-port", str(_free_port()), "-m", "mle6cli", *common, "--out", str(tmp_path / "tr")]
    env = subprocess_env()
    env.pop("OMP_NUM_THREADS", None)  # each side picks its own threads, as a user's shell would
    docs, walls = {}, {}
    for name, argv, share in (("plain", plain, 0.5), ("torchrun", launched, 1.0)):
        started = time.perf_counter()
        proc = run_cli(argv, time_left(240, share), env=env, cwd=tmp_path)
        walls[name] = time.perf_counter() - started
        assert proc.returncode == 0, f"{name} failed:\n{proc.stderr[-3000:]}"
        docs[name] = _json_doc(proc.stdout)
    overhead = walls["torchrun"] - walls["plain"]
    print(f"\nwhole process on {DEVICE}: plain {walls['plain']:.2f} s, torchrun {walls['torchrun']:.2f} s "
          f"({overhead:+.2f} s)")  # fmt: skip
    diffs = {}
    for a, b in zip(docs["plain"]["runs"], docs["torchrun"]["runs"], strict=True):
        assert a["lr"] == b["lr"] and (a["status"], a["epochs_done"]) == (b["status"], b["epochs_done"]), a["lr"]
        folder = Path(a["metrics"])
        diffs[str(a["lr"])] = row_differences(read_csv(tmp_path / "plain" / folder), read_csv(tmp_path / "tr" / folder))
    record(
        "torchrun",
        device=str(DEVICE),
        plain_wall_seconds=walls["plain"],
        torchrun_wall_seconds=walls["torchrun"],
        overhead_seconds=overhead,
        plain_train_seconds=docs["plain"].get("train_seconds"),
        torchrun_train_seconds=docs["torchrun"].get("train_seconds"),
        graphs={"plain": docs["plain"].get("graphs"), "torchrun": docs["torchrun"].get("graphs")},
        members=diffs,
    )
    for a in docs["plain"]["runs"]:
        if a["lr"] < CHAOTIC_LR:
            assert_close(diffs[str(a["lr"])], TORCHRUN_REL, 1 / 12 if QUICK else 1 / 120, f"torchrun lr {a['lr']:g}")


@pytest.mark.torchrun
def test_ddp_under_torchrun_equals_the_plain_run(tmp_path, real_mnist):
    """`torchrun --nproc-per-node 1 -m mle6cli train-ae --ddp`: every gradient goes through the training
    group's all-reduce, NCCL on CUDA (its own debug log shows it ran), gloo on the CPU. One rank's
    all-reduce of its whole batch changes no number beyond the ranks' tolerance (the CPU ddp test's)."""
    data = first_images(real_mnist, tmp_path / "mnist", AE_IMAGES)
    common = ["train-ae", "--data-dir", str(data), "--latent-dims", "3", "--epochs", "1", "--device", str(DEVICE)]
    common += ["--no-download", "--quiet"]
    plain = [sys.executable, "-m", "mle6cli", *common, "--out", str(tmp_path / "plain")]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1"]
    launched = [*launcher, "--master-port", str(_free_port()), "-m", "mle6cli", *common, "--ddp"]
    env = subprocess_env()
    env |= {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_FILE": str(tmp_path / "nccl.%p.log")}
    for name, argv, share in (("plain", plain, 0.5), ("ddp", [*launched, "--out", str(tmp_path / "ddp")], 1.0)):
        proc = run_cli(argv, time_left(180, share), env=env, cwd=tmp_path)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stderr[-3000:]}"
    nccl_logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("nccl.*.log"))
    diff = row_differences(
        read_csv(tmp_path / "plain" / "metrics_d3.csv"), read_csv(tmp_path / "ddp" / "metrics_d3.csv")
    )
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    record("ddp_torchrun", device=str(DEVICE), nccl_ran="NCCL INFO" in nccl_logs, metrics=diff)
    assert config["options"]["ddp"] is True and config["ranks"] == 1
    if DEVICE.type == "cuda":
        assert "NCCL INFO" in nccl_logs, "NCCL wrote no debug log: the gradients did not go through NCCL"
    assert_close(diff, DDP_REL, 0.0, "train-ae --ddp under torchrun")
