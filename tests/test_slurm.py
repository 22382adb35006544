"""The shipped job scripts examples/slurm/*.sbatch on a real SLURM: a one-node cluster on
localhost (tests/slurm_cluster.py), each script adapted only through its variables and sbatch's
command line. Every script is submitted with a command line mle6 refuses, in a job shorter than its
NEAR_END: it must fail at once with mle6's status and line, never requeued. sweep.sbatch is also
cut mid-training and must requeue itself and finish exactly.

How the cut is made: once the first epoch has ended, the test has SLURM send SIGTERM to the
job's steps (`scancel --signal=TERM`, without --batch or --full), which is how SLURM delivers a
time limit's warning (`--signal` without "B:") and a preemption: every process of the step, torchrun
and its ranks, gets it, and the batch shell does not. Waiting for the one-minute time limit's warning
instead would take 30 to 60 s of training, which slurmctld's 30-second checks make hard to place.

The oracle is plain processes at one thread, like torchrun's ranks: every member's files depend on
its learning rate and seed alone (tests/test_distributed.py holds a 2-rank run to one process), so
each learning rate is run as its own sweep, both side by side and beside the job (the test's waits
for SLURM are then spent training).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, subprocess_env
from tests.slurm_cluster import LocalSlurm, Unavailable, _free_port

SCRIPT = REPO / "examples" / "slurm" / "sweep.sbatch"
LRS = ("1e-3", "1e-4")
SWEEP = ["--synthetic", "--seeds", "0-2"]  # 2 lrs x 3 seeds: 3 members a rank
EPOCHS = 6  # the cut comes in epoch 2: the rest outlasts the signal's way to the ranks by seconds


@pytest.fixture
def slurm():
    # a short folder: munged's socket path must fit in a unix socket address
    root = Path(tempfile.mkdtemp(prefix="mle6-slurm-"))
    try:
        cluster = LocalSlurm.start(root)
    except Unavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("MLE6_REQUIRE_SLURM"):
            pytest.fail(f"MLE6_REQUIRE_SLURM is set but SLURM cannot run here: {exc}")
        pytest.skip(f"SLURM cannot run here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def oracle(folder: Path, epochs: int):
    """Start a plain one-thread sweep of each learning rate, all together; returns the function that
    waits for them and gives lr -> its run folder."""
    env = subprocess_env()
    procs = {
        lr: subprocess.Popen(
            [sys.executable, "-m", "mle6cli", "sweep-lr", *SWEEP, "--epochs", str(epochs), "--lrs", lr]
            + ["--out", str(folder / lr), "--quiet"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for lr in LRS
    }  # fmt: skip

    def wait() -> dict[str, Path]:
        for proc in procs.values():
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-2000:]
        return {lr: folder / lr for lr in LRS}

    return wait


def job_env(runs: Path, experiment: str, epochs: int) -> dict:
    """What the job sees (sbatch exports the submitting environment): the script's variables, and
    this checkout's mle6 and torchrun first on the PATH. `mle6` is this interpreter's `python -m
    mle6cli` (what the console script runs), so an environment without the console script (mle6cli
    imported through PYTHONPATH) runs the jobs too."""
    env = subprocess_env()
    bin_dir = runs.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mle6").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m mle6cli "$@"\n')
    (bin_dir / "mle6").chmod(0o755)
    return dict(
        env,
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]),
        EXPERIMENT=experiment,
        RUNS=str(runs),
        MLE6_ARGS=" ".join([*SWEEP, "--epochs", str(epochs), "--lrs", ",".join(LRS)]),
        PROCS_PER_NODE="2",
        RDZV_PORT=str(_free_port()),
    )


# the #SBATCH lines a one-node CPU cluster needs changed
ONE_NODE = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=1"]


def test_the_docs_show_the_shipped_sweep_script_and_every_script_parses():
    page = (REPO / "docs" / "gpus.md").read_text()
    assert f"```bash\n{SCRIPT.read_text()}```" in page
    scripts = sorted((REPO / "examples" / "slurm").glob("*.sbatch"))
    assert [p.name for p in scripts] == ["one-gpu.sbatch", "run-all.sbatch", "sweep.sbatch", "tune.sbatch"]
    for path in scripts:
        done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, (path, done.stderr)
        text = path.read_text()
        # the time limit's warning must reach the job steps, not only the batch shell
        assert "#SBATCH --signal=TERM@" in text and "B:TERM" not in text.replace('"B:TERM"', ""), path
        assert "#SBATCH --requeue" in text and 'scontrol requeue "$SLURM_JOB_ID"' in text, path
        assert "\nrun=$RUNS/$EXPERIMENT\n" in text, path  # named by the experiment, not the job id
        # the command line is checked before anything is launched
        command = r'"(\$COMMAND|\$\{command\[@\]\})" "\$\{args\[@\]\}"'  # tune's command is two words
        check = re.search(rf"\n *mle6 {command} --print-config --quiet >/dev/null \|\| exit \$\?", text)
        assert check and check.start() < text.find("\nsrun "), path


# each script with a command line mle6 refuses, and the start of mle6's one line about it
BAD_LINES = {
    "sweep.sbatch": (
        ["--synthetic", "--lrs", "banana", "--seeds", "0-2", "--epochs", "3"],
        "Error: mle6 sweep-lr: Invalid value for '--lrs': 'banana' is not a number",
    ),
    "one-gpu.sbatch": (["--synthetic", "--epoch", "3"], "Error: mle6 train-ae: No such option: --epoch "),
    "run-all.sbatch": (
        ["--synthetic", "--quick", "--seeds", "0-x"],
        "Error: mle6 run-all: Invalid value for '--seeds': '0-x' is not a seed or a range",
    ),
}


def wait_unrequeued(slurm, job: str, log: Path, timeout: float) -> dict[str, str]:
    """The job's fields once it has ended; fails at once if it was ever requeued."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        fields = slurm.job(job)
        restarted = fields.get("Restarts", "0") != "0" or fields.get("JobState") in ("REQUEUED", "REQUEUE_HOLD")
        assert not restarted, f"job {job} was requeued: {fields}\n{log.read_text()[-3000:] if log.exists() else ''}"
        if fields.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return fields
        time.sleep(0.5)
    raise AssertionError(f"job {job} did not end within {timeout:.0f} s: {slurm.job(job)}")


@pytest.mark.slow
def test_a_bad_command_line_fails_the_job_at_once_and_is_never_requeued(slurm, tmp_path):
    # a one-minute job is well inside NEAR_END (300 s), where a stop without a save is taken for
    # the scheduler's: a usage error must still end it, with mle6's exit status 2 and one line
    runs = tmp_path / "runs"
    env = job_env(runs, "bad", epochs=3)
    jobs = {}
    for name, (args, _) in BAD_LINES.items():
        log = tmp_path / f"{name}.out"
        sbatch = [*ONE_NODE] if name == "sweep.sbatch" else ["--gpus=0", "--cpus-per-task=1"]
        job_vars = dict(env, EXPERIMENT=name, MLE6_ARGS=" ".join(args))
        jobs[name] = (slurm.submit([*sbatch, "--time=1", f"--output={log}", str(SCRIPT.parent / name)], job_vars), log)
    for name, (job, log) in jobs.items():
        fields = wait_unrequeued(slurm, job, log, timeout=60)
        text = log.read_text()
        ended = (fields["JobState"], fields["ExitCode"], fields["Restarts"])
        assert ended == ("FAILED", "2:0", "0"), (name, fields, text)
        lines = text.splitlines()
        # mle6's line alone: no torchrun report, no second attempt, no line of the script's own
        assert len(lines) == 1 and lines[0].startswith(BAD_LINES[name][1]), (name, text)
    assert not runs.exists()  # nothing was written


@pytest.mark.slow
def test_sweep_job_is_cut_requeues_itself_and_finishes_exactly(slurm, tmp_path):
    started = time.time()
    expected = oracle(tmp_path / "oracle", EPOCHS)  # trains while the job does: waited for at the end
    runs = tmp_path / "runs"
    run = runs / "sweep-a"
    env = job_env(runs, "sweep-a", EPOCHS)
    log = tmp_path / "job.out"

    submitted = time.time()
    job = slurm.submit([*ONE_NODE, "--time=5", f"--output={log}", str(SCRIPT)], env)
    deadline = time.time() + 120
    # the first epoch's line: training is under way (resume.pt is written before the first step already)
    while " epoch 1/" not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        time.sleep(0.1)
    assert " epoch 1/" in log.read_text(), (slurm.job(job), log.read_text()[-3000:] if log.exists() else "")
    slurm.run(["scancel", "--signal=TERM", job])
    fields = slurm.wait(job, timeout=300)
    ended = time.time()
    text = log.read_text()
    assert fields["JobState"] == "COMPLETED", (fields, text[-3000:])
    assert fields["ExitCode"] == "0:0", fields
    restarts = int(fields["Restarts"])
    assert restarts >= 1, f"the job was never cut: {text[-3000:]}"

    # each cut: the script said so once and the job requeued itself; the first came mid-training,
    # where mle6 saved (a later one may fall while the results are written: no save, none needed)
    lines = text.splitlines()
    said = [line for line in lines if line.startswith("mle6-sweep: ")]
    cut = f"mle6-sweep: stopped by the scheduler; requeued, the job continues the run in {run} from its last save"
    assert said == [cut] * restarts, text[-3000:]
    saves = [line for line in lines if line.startswith("Error: interrupted ")]
    assert saves, text[-3000:]
    assert saves[0].startswith(("Error: interrupted in epoch ", "Error: interrupted after epoch ")), saves
    assert len(saves) <= restarts
    assert sum(line == f"Resuming the run in {run} with its saved options." for line in lines) == restarts
    # torchrun's agent prints its own traceback when SIGTERM reaches it; mle6's code never appears in one
    assert not [line for line in lines if line.strip().startswith("File ") and "mle6cli" in line], text[-3000:]

    # the run is the uninterrupted one, byte for byte
    compared = 0
    for folder in expected().values():
        for path in sorted(folder.glob("lr_*/seed_*/*")):
            if path.name in ("metrics.csv", "model.pt"):
                mine = run / path.relative_to(folder)
                assert mine.read_bytes() == path.read_bytes(), f"{mine} differs from the plain run's"
                compared += 1
    assert compared == 2 * len(LRS) * 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed"] == restarts
    assert not (run / "resume.pt").exists()

    # a second sbatch of the finished experiment: one note, exit 0, nothing touched
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    again_log = tmp_path / "again.out"
    again = slurm.submit([*ONE_NODE, "--time=2", f"--output={again_log}", str(SCRIPT)], env)
    fields = slurm.wait(again, timeout=120)
    out = again_log.read_text()
    assert (fields["JobState"], fields["ExitCode"], fields["Restarts"]) == ("COMPLETED", "0:0", "0"), (fields, out)
    assert out.splitlines() == [
        f"Note: the run in {run} already finished; nothing to resume (see {run / 'summary.json'})"
    ], out
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    print(
        f"\nslurm: {EPOCHS} epochs; job {job} submitted {submitted - started:.0f} s into the test, COMPLETED "
        f"after {restarts} restart(s) and {ended - submitted:.0f} s; the test took {time.time() - started:.0f} s"
    )
