"""One command as several processes under `torchrun`: the process group, the members' shards, and
the exchanges that keep one run folder.

A run's members (learning rates × seeds, latent sizes × seeds) are independent models, so N
processes split them: each rank trains its shard on the fused path, then rank 0 gathers every
member through the process group and writes the one run folder. A member's seed, initial
weights and batch order depend on nothing but its key, so the result is the single-process
result, member by member (bit for bit on the CPU at the same threads per process).

    torchrun --nproc-per-node 2 -m mle6cli sweep-lr --lrs 1e-3,1e-4,1e-5 --seeds 0-1

How the ranks stay in step without hanging:
- The process group is gloo (what the exchanges carry is plain CPU tensors); a CUDA run adds an
  NCCL group for its training collectives (`train-ae --ddp`).
- Ranks finish their shards at different times, so before each exchange every rank *arrives*
  through the rendezvous store and waits there, watching its peers: a rank that reported a failure,
  or whose process is gone (same host), ends the wait at once with `PeerFailed` naming it. The
  collective that follows has everyone present and a timeout (`MLE6_DIST_TIMEOUT`, 60 s).
- A rank that is interrupted (SIGTERM, SIGINT) or fails says so through the store; the others
  stop after their current step, so every rank saves its shard and the run can be resumed with
  any world size (resume.pt holds members, not ranks).
- The exchanges' tensors live until the group is destroyed (`wire` says why: a hang at exit).

Only rank 0 writes the run folder and prints; the others stay quiet unless `--debug`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence

from mle6cli.engine.wire import Wire
from mle6cli.errors import Mle6Error

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets for every process it starts
TIMEOUT_ENV = "MLE6_DIST_TIMEOUT"  # seconds a collective may take once every rank is there
BACKEND_ENV = "MLE6_DIST_BACKEND"  # auto (NCCL on CUDA, gloo on the CPU), nccl or gloo
DEFAULT_TIMEOUT = 60.0
POLL = 0.05  # seconds between looks at the store while waiting for peers
CHECK_EVERY = 0.25  # seconds between looks at the store from the training loop


def launched() -> bool:
    """True under torchrun (or any launcher that sets RANK, WORLD_SIZE and LOCAL_RANK)."""
    return all(os.environ.get(key) for key in ENV)


def env_rank() -> int:
    return int(os.environ.get("RANK", "0") or 0) if launched() else 0


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0) if launched() else 0


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) if launched() else 1


def follower() -> bool:
    """A rank other than 0 of a launched run: it computes, but rank 0 writes and prints."""
    return launched() and env_world() > 1 and env_rank() != 0


class PeerFailed(Mle6Error):
    """Another rank failed or died; this rank saved its shard and stops."""


class LeaderFailed(Mle6Error):
    """Rank 0 hit an error (and reports it); the other ranks exit with its code, silently."""

    shared = True  # every rank hits it; rank 0 reports it

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class DistributedError(Mle6Error):
    """A launch that cannot work (bad environment, more ranks than members)."""


def shard(costs: Sequence[float], world: int) -> list[list[int]]:
    """Split items of the given costs over `world` ranks, longest first onto the least-loaded rank
    (ties to the lower index and rank): each rank's item indices, in order. Deterministic, so every
    rank computes the same split."""
    loads = [0.0] * world
    parts: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world), key=lambda r: (loads[r], len(parts[r]), r))
        parts[r].append(i)
        loads[r] += costs[i]
    return [sorted(p) for p in parts]


class Peers:
    """This process's place in a launched run: rank, world, the rendezvous store and the gloo group."""

    def __init__(
        self, rank: int, world: int, local_rank: int, store, timeout: float, notes: list[str], wanted: str = "auto"
    ):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.store = store
        self.timeout = timeout
        self.notes = notes  # one-line notes for rank 0 to show (a backend fallback)
        self.wanted = wanted  # MLE6_DIST_BACKEND: auto, nccl or gloo
        self.members: list[tuple[str, int]] = []  # (host, pid) per rank
        self.device_group = None  # the group training collectives use (NCCL on CUDA)
        self.backend = "gloo"
        self._seq = 0
        self._last_check = 0.0
        self._stop: int | None = None
        self._ended = False
        self.wire = Wire(rank, world, self._collective)

    @property
    def writer(self) -> bool:
        return self.rank == 0

    # ---- names and liveness

    def describe(self, rank: int) -> str:
        host, pid = self.members[rank] if rank < len(self.members) else ("?", 0)
        here = host == socket.gethostname()
        return f"rank {rank} (pid {pid}{'' if here else ' on ' + host})"

    def _dead_peer(self) -> int | None:
        """A peer on this host whose process is gone."""
        here = socket.gethostname()
        for r, (host, pid) in enumerate(self.members):
            if r != self.rank and host == here and pid and not process_alive(pid):
                return r
        return None

    def _failure(self) -> tuple[int, str] | None:
        for r in range(self.world):
            if r != self.rank and self.store.check([f"failed/{r}"]):
                return r, self.store.get(f"failed/{r}").decode(errors="replace")
        return None

    def culprit(self) -> PeerFailed | None:
        """After a collective failed: the peer that failed or died, if one did."""
        try:
            self._check_peers()
        except PeerFailed as exc:
            return exc
        except Exception:
            return None
        return None

    def _check_peers(self) -> None:
        failure = self._failure()
        if failure is not None:
            r, message = failure
            raise PeerFailed(f"{self.describe(r)} failed: {message}")
        dead = self._dead_peer()
        if dead is not None:
            raise PeerFailed(f"{self.describe(dead)} died (its process is gone: killed, or out of memory)")

    # ---- stopping together

    def ask_stop(self, signal_number: int | None) -> None:
        """Tell every rank to stop after its current step (this one was interrupted)."""
        self._stop = signal_number or 0
        if not self.store.check(["stop"]):
            self.store.set("stop", str(self._stop))

    def stop_asked(self) -> bool:
        """For the training loop's `stop`: did a peer ask to stop, fail or die? (looked up a few times a
        second, not at every step)."""
        if self._stop is not None:
            return True
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY:
            return False
        self._last_check = now
        try:
            if self.store.check(["stop"]):
                self._stop = int(self.store.get("stop").decode() or 0)
            elif self._failure() is not None or self._dead_peer() is not None:
                self._stop = 0
        except Exception:  # the store is gone with the rank that hosted it: stop, the wait will say
            self._stop = 0
        return self._stop is not None

    @property
    def stop_signal(self) -> int | None:
        return self._stop or None

    def fail(self, message: str) -> None:
        """Tell the others this rank is failing (they stop, save and say which rank and why)."""
        if self._ended:
            return
        self._ended = True
        try:
            self.store.set(f"failed/{self.rank}", message[:500])
        except Exception:
            pass

    # ---- meeting points

    def arrive(self, what: str) -> None:
        """Wait until every rank reaches this point, however long their work takes, but not for a
        peer that failed or died (PeerFailed names it)."""
        self._seq += 1
        name = f"arrive/{self._seq}"
        self.store.set(f"{name}/{self.rank}", what)
        keys = [f"{name}/{r}" for r in range(self.world)]
        while True:
            try:
                if self.store.check(keys):
                    return
                self._check_peers()
            except PeerFailed:
                raise
            except Exception as exc:
                raise PeerFailed(f"lost contact with the other ranks while waiting to {what} ({exc})") from None
            time.sleep(POLL)

    def agree(self, what: str, lead: Callable[[], object]):
        """Rank 0 runs `lead()`; every rank gets its result, or raises its error (rank 0 the error
        itself, the others `LeaderFailed`, silently: rank 0 reports it)."""
        outcome = None
        if self.writer:
            try:
                outcome = ("ok", lead())
            except Mle6Error as exc:
                outcome = ("error", str(exc), exc.exit_code)
                self._broadcast(what, outcome)
                raise
            except BaseException as exc:
                self._broadcast(what, ("error", f"rank 0 failed: {type(exc).__name__}: {exc}", 1))
                raise
        outcome = self._broadcast(what, outcome)
        if outcome[0] == "error":
            raise LeaderFailed(outcome[1], outcome[2])
        return outcome[1]

    def _broadcast(self, what: str, value):
        self.arrive(what)
        return self.wire.exchange(what, "broadcast", value)[0]

    def all_gather(self, what: str, value) -> list:
        self.arrive(what)
        return self.wire.exchange(what, "all", value)

    def gather(self, what: str, value) -> list | None:
        """Every rank's `value` on rank 0 (None elsewhere)."""
        self.arrive(what)
        return self.wire.exchange(what, "gather", value)

    def _collective(self, what: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as exc:  # a peer vanished mid-collective, or it timed out
            time.sleep(POLL)  # a peer that just died: let its pid go
            failed = self.culprit()
            if failed is not None:
                raise failed from None
            raise PeerFailed(
                f"the ranks could not {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None

    def use_device(self, device) -> None:
        """The group for training collectives on `device` (`training_backend` chooses)."""
        import torch
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend, note = training_backend(device.type, self.wanted, dist.is_nccl_available())
        if note:
            self.notes.append(note)
        if backend == "nccl":
            from datetime import timedelta

            self.backend = "nccl"
            self.device_group = dist.new_group(backend="nccl", timeout=timedelta(seconds=self.timeout))
            return
        self.device_group = None  # the default (gloo) group

    def close(self) -> None:
        import torch.distributed as dist

        self._ended = True
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:
                pass
        self.wire.release()


def training_backend(device_type: str, wanted: str, nccl_available: bool) -> tuple[str, str | None]:
    """The backend of the training collectives (`--ddp`'s gradients) and a note to show, if any.

    NCCL on CUDA unless MLE6_DIST_BACKEND=gloo asks otherwise (the way around NCCL trouble) or this
    torch has none; gloo on the CPU, where NCCL cannot run (join() says so when it was asked for)."""
    if device_type != "cuda" or wanted == "gloo":
        return "gloo", None
    if not nccl_available:
        return "gloo", "Note: this torch has no NCCL; the ranks use gloo on CUDA (slower)."
    return "nccl", None


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by torchrun) is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_current: Peers | None = None


def current() -> Peers | None:
    return _current


def join() -> Peers | None:
    """Join the launched run's process group (once per process); None when not launched.

    The default group is gloo: it carries the exchanges (CPU tensors). MLE6_DIST_BACKEND=nccl on a
    machine without CUDA falls back to gloo with a note. A world of one process joins too (torchrun
    --nproc-per-node 1 takes the same path as a larger world, so a one-GPU box can check it).
    """
    global _current
    if _current is not None or not launched():
        return _current
    world = env_world()
    import atexit
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    rank, local_rank = env_rank(), env_local_rank()
    if not 0 <= rank < world:
        raise DistributedError(f"RANK {rank} is outside WORLD_SIZE {world}")
    notes = []
    wanted = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "gloo", "nccl"):
        raise DistributedError(f"{BACKEND_ENV} must be auto, nccl or gloo, got {wanted!r}")
    if wanted == "nccl" and not (torch.cuda.is_available() and dist.is_nccl_available()):
        notes.append("Note: NCCL needs CUDA, which this machine lacks; the ranks use gloo.")
    timeout = _timeout()
    try:
        store, rank, world = next(dist.rendezvous("env://", rank, world, timeout=timedelta(seconds=timeout)))
        store = dist.PrefixStore("mle6", store)
        dist.init_process_group(
            "gloo", store=dist.PrefixStore("pg", store), rank=rank, world_size=world, timeout=timedelta(seconds=timeout)
        )
    except Exception as exc:
        raise DistributedError(f"could not join the process group as rank {rank} of {world}: {exc}") from None
    peers = Peers(rank, world, local_rank, store, timeout, notes, wanted)
    peers.members = [tuple(m) for m in peers.all_gather("meet", (socket.gethostname(), os.getpid()))]
    atexit.register(peers.close)
    _current = peers
    return peers


def _timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise DistributedError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def fail_current(message: str) -> None:
    """The error boundary's hook: tell the peers (if any) that this rank is failing."""
    if _current is not None:
        _current.fail(message)
