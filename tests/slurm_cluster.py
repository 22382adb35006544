"""A one-node SLURM cluster on localhost, for the job scripts' tests: munged, slurmctld and slurmd
started from a temporary folder (their own slurm.conf, munge key, state, spool and logs, free
ports) and stopped by pid. Nothing outside that folder is read or written; clients find the
cluster through SLURM_CONF in `env`.

`LocalSlurm.start(folder)` raises `Unavailable` with the reason where the daemons are not
installed or cannot run here (not root, no munged, a daemon that does not come up).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from mle6cli.engine.distributed import process_alive

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "squeue", "sinfo", "srun", "scancel")

SLURM_CONF = """\
ClusterName=mle6test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket={munge_socket},cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={root}/plugstack.conf
# no cgroups in a container: processes are tracked by parentage, tasks are not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# try pending jobs every second (default 60 s), so a requeued job starts as soon as it may
SchedulerParameters=sched_interval=1
JobRequeue=1
ReturnToService=2
KillWait=10
MinJobAge=600
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class Unavailable(Exception):
    """SLURM cannot be started here; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class LocalSlurm:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.pids: dict[str, int] = {}

    # ------------------------------------------------------------------ up and down

    @classmethod
    def start(cls, root: Path) -> LocalSlurm:
        missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
        if missing:
            raise Unavailable(f"not installed: {', '.join(missing)} (Debian: apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise Unavailable("slurmd runs jobs as their users, so it needs root")
        cluster = cls(root)
        try:
            cluster._start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self) -> None:
        root = self.root
        for name in ("state", "spool", "log", "munge"):
            (root / name).mkdir(parents=True, exist_ok=True)
        munge = root / "munge"
        munge.chmod(0o711)  # munged wants its socket folder private to it but reachable
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        socket_path = munge / "munge.socket"
        (root / "plugstack.conf").write_text("")
        self.conf.write_text(
            SLURM_CONF.format(
                root=root, munge_socket=socket_path, ctld_port=_free_port(), slurmd_port=_free_port(),
                cpus=os.cpu_count() or 1,
            )
        )  # fmt: skip
        self._daemon(
            "munged",
            ["munged", "--force", f"--socket={socket_path}", f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
             f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"],
            munge / "munged.pid",
        )  # fmt: skip
        self._daemon("slurmctld", ["slurmctld", "-f", str(self.conf), "-i"], root / "slurmctld.pid")
        self._daemon("slurmd", ["slurmd", "-f", str(self.conf), "-N", "localhost"], root / "slurmd.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            state = self.run(["sinfo", "-h", "-o", "%T"], check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise Unavailable(f"the node did not come up (sinfo says {state!r}); see {root / 'log'}")

    def _daemon(self, name: str, command: list[str], pid_file: Path) -> None:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        deadline = time.time() + 20
        while (pid := _pid(pid_file)) is None and time.time() < deadline:
            time.sleep(0.1)
        if done.returncode != 0 or pid is None or not process_alive(pid):
            raise Unavailable(f"{name} did not start: {(done.stderr or done.stdout).strip()[-500:]}")
        self.pids[name] = pid

    def stop(self) -> None:
        """Cancel what is left of the jobs, then end the daemons by their pids (slurmd first)."""
        if "slurmctld" in self.pids and self.jobs():
            self.run(["scancel", "--full", "--user", "root"], check=False)
            deadline = time.time() + 30
            while self.jobs() and time.time() < deadline:
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + 15
            while process_alive(pid) and time.time() < deadline:
                time.sleep(0.1)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ using it

    def run(self, command: list[str], check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(command, env=env or self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def jobs(self) -> list[str]:
        """Jobs still pending, running or completing."""
        out = self.run(["squeue", "-h", "-o", "%i %T"], check=False).stdout
        return [line for line in out.splitlines() if line.strip()]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job`'s fields (JobState, Restarts, ExitCode, ...)."""
        out = self.run(["scontrol", "show", "job", job_id]).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def submit(self, args: list[str], env: dict) -> str:
        done = self.run(["sbatch", "--parsable", *args], env=dict(self.env, **env))
        return done.stdout.strip().split(";")[0]

    def wait(self, job_id: str, timeout: float) -> dict[str, str]:
        """The job's fields once it has ended for good (not pending, running, requeued or completing)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            fields = self.job(job_id)
            if fields.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
                return fields
            time.sleep(1)
        raise AssertionError(f"job {job_id} did not end within {timeout:.0f} s: {self.job(job_id)}")
