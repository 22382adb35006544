"""Device resolution, CPU threads and seeding: the one place for each.

`resolve_device` is called once per command; everything downstream takes the resulting
`torch.device` as an argument; it also sets torch's CPU thread count for work on that device.
"""

from __future__ import annotations

import os
import random
import re

from mle6cli.errors import DeviceError

THREADS_ENV = "MLE6_THREADS"
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")


def resolve_device(spec: str = "auto", threads: int | str | None = None):
    """Turn `auto|cpu|cuda|cuda:N|mps` into a torch.device that exists here, or raise DeviceError.

    It also applies the CPU thread policy for work on that device (`configure_threads`).
    """
    device = _resolve(spec)
    configure_threads(device, threads)
    return device


def _resolve(spec: str):
    import torch

    text = (spec or "auto").strip().lower()
    match = _DEVICE_RE.match(text)
    if not match:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    if text == "auto":
        if torch.cuda.is_available():
            return _cuda(spec, None)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available here; use --device cpu")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} requested but CUDA is not available here; use --device cpu or auto")
    return _cuda(spec, int(match.group(2)) if match.group(2) is not None else None)


def _cuda(spec: str, index: int | None):
    """cuda:index; without an index the current GPU, or under torchrun the GPU of LOCAL_RANK."""
    import torch

    count = torch.cuda.device_count()
    local = _launched_index()
    if index is None and local is not None:
        if local >= count:
            raise DeviceError(
                f"torchrun's LOCAL_RANK {local} has no GPU: this machine has {count} CUDA device(s); "
                f"start at most {count} processes per node"
            )
        return torch.device("cuda", local)
    index = torch.cuda.current_device() if index is None else index
    if index >= count:
        raise DeviceError(
            f"device {spec!r} does not exist: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)


def _launched_index() -> int | None:
    """Under torchrun, each process takes the GPU of its LOCAL_RANK (auto and cuda)."""
    from mle6cli.engine.distributed import env_local_rank, launched

    return env_local_rank() if launched() else None


def configure_threads(device, threads: int | str | None = None) -> int:
    """Set torch's intra-op CPU threads for work on `device`; return the count in use.

    By default torch keeps its own choice (one thread per core, or OMP_NUM_THREADS): on an idle
    2-core machine that trains 1.5-1.7x faster than one thread. `threads`, else the environment
    variable MLE6_THREADS (a whole number, or "auto" for torch's default) overrides it: on a
    machine shared with other jobs, MLE6_THREADS=1 avoids OpenMP threads waiting on each other
    (measured 5-40x slower epochs there; docs/scripting.md, "Output, errors and exit codes"). The
    count can change CPU results in the last bits, so config.json records it.
    """
    import torch

    text = str(threads if threads is not None else os.environ.get(THREADS_ENV, "")).strip().lower()
    if not text:
        return torch.get_num_threads()
    if text == "auto":
        count = _default_threads()
    elif text.isdigit() and int(text) >= 1:
        count = int(text)
    else:
        raise DeviceError(f"{THREADS_ENV} must be a whole number of at least 1 or 'auto', got {text!r}")
    torch.set_num_threads(count)
    return count


def _omp_threads() -> int | None:
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) >= 1 else None


def _default_threads() -> int:
    """What torch picks when nothing sets it: OMP_NUM_THREADS, else one per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return _omp_threads() or max(1, cores or 1)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def describe_device(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch (all devices); optionally force deterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this set before its first use to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
