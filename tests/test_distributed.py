"""torchrun: members split over processes and nodes, gathered into one run folder (CPU, gloo).

The oracle is the single-process run at the same CPU threads per process (torchrun sets
OMP_NUM_THREADS=1 for its workers; the thread count changes CPU results in the last bits).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mle6cli.engine.distributed import shard
from mle6cli.tasks.jobs import check_world
from tests.conftest import subprocess_env
from tests.mnist_helpers import TINY, tiny_synthetic  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")

SWEEP = ["sweep-lr", "--synthetic", "--lrs", "1e-3,1e-4,1e-5", "--seeds", "0-1", "--epochs", "2"]
AE = ["train-ae", "--synthetic", "--latent-dims", "3,10,100", "--epochs", "1", "--batch-size", "64"]
# the CLI with smaller synthetic MNIST (a test-only knob), as a script torchrun can start
LAUNCHER = f"""
import sys
from mle6cli.data import mnist
mnist.SYNTHETIC_SIZES = {TINY!r}
from mle6cli.cli import app
app(sys.argv[1:], prog_name="mle6")
"""

# the CLI as `python -m mle6cli` runs it, noting what each rank exits with beside the script (torchrun's own
# report lists only the ranks it saw fail before it stopped the rest, and which ones depends on torch's version)
EXIT_NOTING = """
import os, sys
from pathlib import Path
from mle6cli.cli import main
try:
    main()
except SystemExit as exc:
    Path(sys.argv[0]).with_name(f"exit.rank{os.environ['RANK']}").write_text(str(exc.code))
    raise
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher(tmp_path: Path) -> Path:
    path = tmp_path / "mle6_tiny.py"
    path.write_text(LAUNCHER)
    return path


def torchrun(args: list[str], *, nproc: int = 2, script: Path | None = None, launch=(), env=None, **popen):
    """`torchrun --standalone --nproc-per-node N -m mle6cli ARGS` (or a script), as a Popen."""
    target = [str(script)] if script is not None else ["-m", "mle6cli"]
    where = list(launch) or ["--standalone"]
    command = [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(nproc), *target, *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(subprocess_env(), **(env or {})),
        **popen,
    )  # fmt: skip


def single(args: list[str], script: Path | None = None) -> subprocess.CompletedProcess:
    target = [str(script)] if script is not None else ["-m", "mle6cli"]
    return subprocess.run([sys.executable, *target, *args], capture_output=True, text=True, env=subprocess_env())


def finished(proc, timeout=300) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def ours(err: str) -> list[str]:
    """mle6's own stderr lines (not torchrun's log lines)."""
    return [line for line in err.splitlines() if line.startswith(("Error", "Note", "Warning"))]


def same_files(a: Path, b: Path, patterns=("**/*.csv", "**/*.pt")) -> list[str]:
    names = sorted({p.relative_to(a).as_posix() for pattern in patterns for p in a.glob(pattern)})
    assert names, f"nothing to compare in {a}"
    for name in names:
        assert (b / name).read_bytes() == (a / name).read_bytes(), name
    return names


def workers(proc) -> dict[int, int]:
    """rank -> pid of torchrun's worker processes (read from their environment)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        found = {}
        for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
            if "RANK" in env:
                found[int(env["RANK"])] = int(pid)
        if len(found) == 2:
            return found
        time.sleep(0.1)
    raise AssertionError("torchrun's workers did not start")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The single-process oracle runs, made once: name -> run folder."""
    made = {}

    def run(name: str, args: list[str]) -> Path:
        if name not in made:
            out = tmp_path_factory.mktemp("one") / name
            done = single([*args, "--out", str(out), "--quiet"])
            assert done.returncode == 0, done.stderr
            made[name] = out
        return made[name]

    return run


# ---------------------------------------------------------------- sharding, without processes


def test_shard_balances_cost_and_covers_every_member_once():
    assert shard([1] * 6, 2) == [[0, 2, 4], [1, 3, 5]]
    assert shard([1] * 3, 2) == [[0, 2], [1]]  # uneven: the first rank takes the odd one
    parts = shard([0, 5, 5, 5, 0, 1], 2)  # finished members cost nothing
    assert sorted(i for p in parts for i in p) == list(range(6))
    loads = [sum([0, 5, 5, 5, 0, 1][i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= 5  # the longest first: 10 and 6, never 15 and 1
    assert shard([3, 1, 1, 1], 2) == [[0], [1, 2, 3]]
    assert shard([1] * 5, 3) == shard([1] * 5, 3)


def test_more_processes_than_members_is_refused():
    with pytest.raises(
        Exception, match=r"torchrun started 4 processes but this sweep-lr run has 3 members; start at most 3"
    ):
        check_world(4, 3, "sweep-lr")
    check_world(3, 3, "sweep-lr")
    check_world(8, None, "train-ae")  # data parallel: every rank trains every member


@pytest.mark.parametrize(
    ("device", "wanted", "nccl", "expected"),
    [
        ("cuda", "auto", True, ("nccl", None)),
        ("cuda", "nccl", True, ("nccl", None)),
        ("cuda", "gloo", True, ("gloo", None)),  # the documented way around NCCL trouble
        ("cuda", "auto", False, ("gloo", "Note: this torch has no NCCL; the ranks use gloo on CUDA (slower).")),
        ("cuda", "gloo", False, ("gloo", None)),
        ("cpu", "auto", True, ("gloo", None)),
        ("cpu", "nccl", True, ("gloo", None)),  # join() says NCCL needs CUDA
    ],
)
def test_the_training_backend_obeys_mle6_dist_backend(device, wanted, nccl, expected):
    from mle6cli.engine.distributed import training_backend

    assert training_backend(device, wanted, nccl) == expected


def test_other_commands_are_refused_under_torchrun():
    from typer.testing import CliRunner

    from mle6cli.cli import app

    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    result = CliRunner().invoke(app, ["conv-size", "--input", "64", "--kernel", "3"], env=env)
    assert result.exit_code == 2
    assert "conv-size runs as one process; under torchrun use train-cnn, sweep-lr, train-ae, pca-ae" in result.output


def test_the_exchanges_keep_every_tensor_they_hand_to_the_group_until_it_is_destroyed(tmp_path, monkeypatch):
    """A gloo worker thread that frees a collective's tensors after Python let go of them takes the GIL,
    and some torch releases (2.4.1) destroy the group holding the GIL while they join those threads: a
    rank could hang at exit. So each tensor handed to a collective lives on until close, and not
    after. The values come back as they went (one process: every list is [value])."""
    import gc
    import weakref

    import torch.distributed as dist

    from mle6cli.engine.distributed import Peers

    handed = []  # weak references: the test must not keep the tensors alive itself
    for name in ("all_gather", "gather", "broadcast"):

        def spy(*args, real=getattr(dist, name), **kwargs):
            for arg in (*args, *kwargs.values()):
                items = arg if isinstance(arg, list) else [arg]
                handed.extend(weakref.ref(t) for t in items if isinstance(t, torch.Tensor))
            return real(*args, **kwargs)

        monkeypatch.setattr(dist, name, spy)
        monkeypatch.setattr(dist.distributed_c10d, name, spy)  # what torch's object collectives call

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    peers = Peers(0, 1, 0, dist.HashStore(), 60.0, [])
    try:
        value = {"weights": torch.arange(5.0), "name": "d3 ü", "epochs": [1, None]}
        gathered = peers.all_gather("exchange", value)
        on_rank0 = peers.gather("gather", value)
        agreed = peers.agree("agree", lambda: value)
        gc.collect()
        alive = [ref() is not None for ref in handed]
    finally:
        peers.close()
    gc.collect()
    assert len(alive) >= 6 and all(alive)
    assert not dist.is_initialized()
    assert all(ref() is None for ref in handed)
    for got in (gathered[0], on_rank0[0], agreed):
        assert torch.equal(got["weights"], value["weights"])
        assert (got["name"], got["epochs"]) == (value["name"], value["epochs"])
    assert len(gathered) == len(on_rank0) == 1


# ---------------------------------------------------------------- torchrun on the CPU


@pytest.mark.slow
def test_sweep_two_ranks_equals_one_process_byte_for_byte(tmp_path, one_process):
    proc = torchrun([*SWEEP, "--out", str(tmp_path / "ranks")])
    out, err = finished(proc)
    names = same_files(one_process("sweep", SWEEP), tmp_path / "ranks")
    assert len([n for n in names if n.endswith("metrics.csv")]) == 6
    # only rank 0 speaks: one synthetic-data note, one line per member-epoch, one table
    assert sum("SYNTHETIC" in line for line in ours(err)) == 1
    assert len([line for line in out.splitlines() if " epoch " in line]) == 12
    assert out.count("best lr") == 1
    config = json.loads((tmp_path / "ranks" / "config.json").read_text())
    assert config["ranks"] == 2 and config["cpu_threads"] == 1
    assert not list((tmp_path / "ranks").glob("resume*"))


@pytest.mark.slow
def test_train_ae_uneven_shards_equal_one_process(tmp_path):
    script = _launcher(tmp_path)
    finished(torchrun([*AE, "--out", str(tmp_path / "ranks"), "--quiet"], script=script))
    reference = single([*AE, "--out", str(tmp_path / "one"), "--quiet"], script=script)
    assert reference.returncode == 0, reference.stderr
    names = same_files(tmp_path / "one", tmp_path / "ranks")
    assert {"metrics_d3.csv", "metrics_d10.csv", "metrics_d100.csv", "ae_d100.pt"} <= set(names)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    ranks = json.loads((tmp_path / "ranks" / "summary.json").read_text())
    assert [r["final_test_mse"] for r in ranks["runs"]] == [r["final_test_mse"] for r in one["runs"]]


@pytest.mark.slow
def test_two_nodes_on_localhost_equal_one_process(tmp_path, one_process):
    """Two agents on one host with fixed roles (torchrun's static rendezvous: node 0 holds the store):
    two c10d agents racing to host the store on one machine can leave one waiting forever."""
    port = _free_port()
    launch = ["--nnodes", "2", "--master-addr", "127.0.0.1", "--master-port", str(port)]
    nodes = [
        torchrun(
            [*SWEEP, "--out", str(tmp_path / "nodes"), "--quiet"], nproc=1, launch=[*launch, "--node-rank", str(n)]
        )
        for n in range(2)
    ]
    for node in nodes:
        finished(node)
    same_files(one_process("sweep", SWEEP), tmp_path / "nodes")


CLOSING_LAST = """
import sys, time
from pathlib import Path
from mle6cli.engine import distributed
peers = distributed.join()
ranks = peers.all_gather("say hello", peers.rank)  # an exchange just before the exit, as a run ends
if peers.rank == 1:
    while distributed.process_alive(peers.members[0][1]):  # rank 0 hosts the rendezvous store
        time.sleep(0.05)
    peers.close()
Path(sys.argv[0]).with_name(f"closed.rank{peers.rank}").write_text(repr(ranks))
"""


@pytest.mark.slow
def test_a_rank_that_closes_after_rank_0_has_exited_exits_cleanly(tmp_path):
    """Rank 0 holds the rendezvous store and may leave first; closing needs nothing from it."""
    script = tmp_path / "closing" / "closing_last.py"
    script.parent.mkdir()
    script.write_text(CLOSING_LAST)
    _, err = finished(torchrun([], script=script), timeout=120)
    closed = {p.name: p.read_text() for p in script.parent.glob("closed.rank*")}
    assert closed == {"closed.rank0": "[0, 1]", "closed.rank1": "[0, 1]"}, err[-2000:]


LONGER = [*SWEEP[:-1], "4"]  # 4 epochs: time to interrupt it


@pytest.mark.slow
def test_sigterm_to_every_rank_then_resume_as_one_process(tmp_path, one_process):
    args = LONGER
    run = tmp_path / "run"
    script = tmp_path / "noting" / "mle6_noting.py"
    script.parent.mkdir()
    script.write_text(EXIT_NOTING)
    proc = torchrun([*args, "--out", str(run)], script=script)
    pids = workers(proc)
    assert " epoch 1/4 " in proc.stdout.readline()
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    exits = {p.name: p.read_text() for p in script.parent.glob("exit.rank*")}
    assert exits == {"exit.rank0": "143", "exit.rank1": "143"}, err[-2000:]  # each rank saved and exited 143
    assert f"Continue with: mle6 sweep-lr --resume {run}" in err
    assert json.loads((run / "progress.json").read_text())["status"] == "interrupted"
    assert not (run / "summary.json").exists()

    resumed = single(["sweep-lr", "--resume", str(run), "--quiet"])  # world size 1
    assert resumed.returncode == 0, resumed.stderr
    same_files(one_process("longer", LONGER), run)
    assert json.loads((run / "summary.json").read_text())["resumed"] == 1


@pytest.mark.slow
def test_a_killed_rank_makes_the_other_exit_with_a_clear_line(tmp_path, one_process):
    args = LONGER
    run = tmp_path / "run"
    proc = torchrun([*args, "--out", str(run)])
    pids = workers(proc)
    proc.stdout.readline()
    os.kill(pids[1], signal.SIGKILL)
    started = time.time()
    _, err = proc.communicate(timeout=120)
    assert time.time() - started < 60
    assert proc.returncode != 0
    lines = [line for line in ours(err) if line.startswith("Error")]
    assert lines == [
        f"Error: rank 1 (pid {pids[1]}) died (its process is gone: killed, or out of memory). "
        f"This rank saved its members; continue with: mle6 sweep-lr --resume {run}"
    ], err[-2000:]
    # what each rank saved is enough to finish the run, as one process, exactly
    resumed = single(["sweep-lr", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    same_files(one_process("longer", LONGER), run)


@pytest.mark.slow
def test_more_ranks_than_members_and_the_nccl_fallback_say_one_line_each(tmp_path):
    proc = torchrun(["sweep-lr", "--synthetic", "--lrs", "1e-3", "--epochs", "1", "--out", str(tmp_path / "r")],
                    env={"MLE6_DIST_BACKEND": "nccl"})  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    mine = ours(err)
    assert (
        mine.count("Note: NCCL needs CUDA, which this machine lacks; the ranks use gloo.") == 1
        or torch.cuda.is_available()
    )
    assert [line for line in mine if line.startswith("Error")] == [
        "Error: torchrun started 2 processes but this sweep-lr run has 1 member; start at most 1 "
        "(each process trains whole members)"
    ]
    assert not (tmp_path / "r").exists()  # refused before the folder was made


@pytest.mark.slow
def test_ddp_agrees_with_one_process_within_tolerance(tmp_path):
    script = _launcher(tmp_path)
    args = ["train-ae", "--synthetic", "--latent-dims", "3,10", "--epochs", "2", "--batch-size", "64", "--quiet"]
    finished(torchrun([*args, "--ddp", "--out", str(tmp_path / "ddp")], script=script))
    reference = single([*args, "--out", str(tmp_path / "one")], script=script)
    assert reference.returncode == 0, reference.stderr
    for d in (3, 10):
        import csv

        rows = [list(csv.DictReader(open(tmp_path / run / f"metrics_d{d}.csv"))) for run in ("one", "ddp")]
        assert len(rows[0]) == len(rows[1]) == 2
        for a, b in zip(*rows, strict=True):
            for key in ("train_loss", "test_loss"):
                assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-2), (d, key)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["options"]["ddp"] is True and config["ranks"] == 2


def test_ddp_without_torchrun_is_one_process_with_a_note(tmp_path, tiny_synthetic):  # noqa: F811
    from typer.testing import CliRunner

    from mle6cli.cli import app

    args = ["train-ae", "--synthetic", "--latent-dims", "3", "--epochs", "1", "--ddp", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert "Note: --ddp without torchrun: one process trains on all the data." in result.output


@pytest.mark.cuda
@pytest.mark.torchrun
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_one_gpu_under_torchrun_equals_the_plain_cuda_run(tmp_path):
    """Byte for byte: --deterministic (cuDNN's default backward may add with atomics, in any order)."""
    args = [*SWEEP, "--device", "cuda", "--deterministic", "--quiet"]
    finished(torchrun([*args, "--out", str(tmp_path / "nccl")], nproc=1))
    reference = single([*args, "--out", str(tmp_path / "one")])
    assert reference.returncode == 0, reference.stderr
    same_files(tmp_path / "one", tmp_path / "nccl", patterns=("**/*.csv",))
