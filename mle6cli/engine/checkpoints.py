"""resume.pt and the checks a `--resume` makes before trusting it.

- **resume.pt** holds every member (`Member`): its loop state, weights and Adam state, as plain
  tensors and values (loaded with `weights_only=True`), plus the clock and the torch RNG. Members
  are saved one by one, so a run can continue on another device or with another number of ranks.
- **resume.rank<r>.pt**: under torchrun, the members one rank trains, saved while it trains them;
  `load_resume` merges them into resume.pt's, so a lost rank costs at most `--save-every` epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.engine.folder import CONFIG, RESUME, RESUME_SHARD, RESUME_SHARDS, SUMMARY, RunDirError
from mle6cli.files import FileError, load_torch, read_json, save_torch


@dataclass
class Member:
    """One model of a run, as the run folder knows it.

    `key` says what it is (e.g. {"lr": 1e-3, "seed": 42}); `state` is its loop state
    (`engine.loop.MemberState`); `weights`/`optimizer` its latest exported tensors (None
    before it first trained); `extra` the job's own bookkeeping (restarts, …).
    """

    key: dict
    state: object
    weights: dict | None = None
    optimizer: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "state": self.state.to_dict(),
            "weights": self.weights,
            "optimizer": self.optimizer,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Member:
        from mle6cli.engine.loop import MemberState

        return cls(data["key"], MemberState.from_dict(data["state"]), data["weights"], data["optimizer"], data["extra"])


# ---- writing


def write_resume(folder: Path, command: str, members: Sequence[Member], clock: dict, extra: dict) -> Path:
    """resume.pt: every member, the job's `extra` entries, the clock's state and the torch RNG."""
    import torch

    payload = {
        "command": command,
        "members": [m.to_dict() for m in members],
        **extra,
        **clock,
        "torch_rng": torch.get_rng_state(),
    }
    return save_torch(Path(folder) / RESUME, payload)


def write_shard(folder: Path, rank: int, command: str, members: Sequence[Member], clock: dict) -> Path:
    """resume.rank<r>.pt: the members rank `rank` trains, and the clock's state."""
    payload = {"command": command, "members": [m.to_dict() for m in members], **clock}
    return save_torch(Path(folder) / RESUME_SHARD.format(rank), payload)


def has_resume(folder: Path) -> bool:
    """Whether `folder` holds an interrupted run's resume.pt."""
    return (Path(folder) / RESUME).is_file()


def remove_resume(folder: Path) -> None:
    (Path(folder) / RESUME).unlink(missing_ok=True)


def remove_shards(folder: Path) -> None:
    """Drop the ranks' resume.rank<r>.pt files once resume.pt holds their members."""
    for path in Path(folder).glob(RESUME_SHARDS):
        path.unlink(missing_ok=True)


# ---- reading and checking


def load_resume(run_dir: Path, command: str | None = None, keys=()) -> tuple[dict, dict]:
    """(config.json, resume.pt) of an interrupted run; RunDirError naming what is missing otherwise.

    With `command`, a run of another command is refused with the command line that resumes it.
    config.json must be a JSON object with `command` and `options` (holding every option in
    `keys`: a run's config.json lists them all) and, where present, a `data` object; resume.pt
    a checkpoint of that command with its `members`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"--resume: {run_dir} is not a run folder")
    fresh = None
    if not (run_dir / RESUME).exists():
        if (run_dir / SUMMARY).exists():
            raise RunDirError(f"--resume: the run in {run_dir} already finished")
        if not (run_dir / CONFIG).is_file():
            raise RunDirError(
                f"--resume: no checkpoint in {run_dir} ({RESUME} is missing); only an interrupted run can be resumed"
            )
        # killed before its first save: nothing trained to keep, so it starts again with its options
        fresh = {"command": None, "members": None}
    try:
        config = read_json(run_dir / CONFIG)
        state = load_torch(run_dir / RESUME) if fresh is None else fresh
    except FileError as exc:
        raise RunDirError(f"--resume: {exc}") from None
    if fresh is not None and isinstance(config, dict):
        fresh["command"] = config.get("command")
    if not isinstance(config, dict):
        raise RunDirError(f"--resume: {run_dir / CONFIG} holds a JSON {_json_kind(config)}, not a run's config")
    saved = config.get("command")
    if not isinstance(saved, str) or not saved:
        raise RunDirError(f"--resume: {run_dir / CONFIG} lacks the key 'command'")
    if command is not None and saved != command:
        raise RunDirError(f"--resume: {run_dir} holds a {saved} run; use mle6 {saved} --resume {run_dir}")
    options = config.get("options")
    if not isinstance(options, dict):
        raise RunDirError(f"--resume: {run_dir / CONFIG} lacks the run's options")
    missing = [key for key in keys if key not in options]
    if missing:
        raise RunDirError(f"--resume: {run_dir / CONFIG} lacks the option(s) {', '.join(missing)}")
    if not isinstance(config.get("data", {}), dict):
        kind = _json_kind(config["data"])
        raise RunDirError(f"--resume: {run_dir / CONFIG} has a 'data' entry that is a JSON {kind}, not an object")
    members = state.get("members") if isinstance(state, dict) else None
    if fresh is None and (not isinstance(members, list) or not all(isinstance(m, dict) for m in members)):
        held = type(state).__name__ if not isinstance(state, dict) else "no list of members"
        raise RunDirError(f"--resume: {run_dir / RESUME} is not a resume checkpoint of mle6 (it holds {held})")
    if state.get("command") != saved:
        raise RunDirError(
            f"--resume: {run_dir / RESUME} belongs to a {state.get('command')!r} run, {CONFIG} to a {saved} run"
        )
    if fresh is None:
        merge_shards(run_dir, state)
    return config, state


def merge_shards(run_dir: Path, state: dict) -> None:
    """Put into `state` (resume.pt's) the members that ranks saved in resume.rank<r>.pt after it was
    written: a run under torchrun that crashed (a rank or node lost) resumes from where each rank got."""
    by_key = {repr(m.get("key")): i for i, m in enumerate(state["members"])}
    for path in sorted(run_dir.glob(RESUME_SHARDS)):
        try:
            shard = load_torch(path)
        except FileError as exc:
            raise RunDirError(f"--resume: {exc}") from None
        members = shard.get("members") if isinstance(shard, dict) else None
        if not isinstance(members, list) or shard.get("command") != state.get("command"):
            raise RunDirError(f"--resume: {path} is not a rank's checkpoint of this run")
        for member in members:
            index = by_key.get(repr(member.get("key"))) if isinstance(member, dict) else None
            if index is None:
                raise RunDirError(f"--resume: {path} holds a member this run does not have")
            state["members"][index] = member
        state["train_seconds"] = max(float(state.get("train_seconds", 0.0)), float(shard.get("train_seconds", 0.0)))


def saved_members(saved: dict | None, run_dir: Path) -> list[Member] | None:
    """The members of a loaded resume.pt (None: a fresh run, or one killed before its first save)."""
    if saved is None or saved.get("members") is None:
        return None
    try:
        return [Member.from_dict(m) for m in saved["members"]]
    except (KeyError, TypeError) as exc:
        raise RunDirError(f"--resume: {Path(run_dir) / RESUME} is not a checkpoint of this version ({exc})") from None


def check_same_data(document: dict, data: dict, run_dir: Path) -> None:
    """Refuse to resume on other data than the run started on (config.json's `document` against `data`)."""
    before = document.get("data") or {}
    for key in ("sizes", "fingerprint"):
        if key == "fingerprint" and _scheme(before.get(key)) != _scheme(data.get(key)):
            continue  # made by another version, another way: not comparable
        if before.get(key) is not None and before.get(key) != data.get(key):
            what = f"sizes {before['sizes']} then, {data.get('sizes')} now" if key == "sizes" else "other contents"
            raise RunDirError(f"--resume: the data changed since the run in {run_dir} started ({what})")


def _scheme(fingerprint: str | None) -> str | None:
    """`v2` of a `v2:<hex>` data fingerprint; "" for the first, unprefixed kind."""
    if fingerprint is None:
        return None
    scheme, colon, _ = fingerprint.partition(":")
    return scheme if colon else ""


def _json_kind(value) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(value), "value") if not isinstance(value, dict) else "object"
