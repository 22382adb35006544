"""What `make gpu-check` needs from the Python it runs on, and how it brings what is missing.

Standard library only: it must run on a bare interpreter, before anything else is there.

    python3 benchmarks/gpu_env.py install --wheels .whl --target DIR
        Every wheel in .whl/ that gives a module this Python cannot import is unpacked into DIR (a
        wheel is a zip: no pip, no network, nothing outside DIR touched). Wheels for another Python
        or machine are passed over; modules already importable are left alone.
    python3 benchmarks/gpu_env.py check
        Imports every module the check needs; lists each one that fails (with the module it
        lacks, for a missing dependency) and how to bring it, and exits 3 if any does.
    python3 benchmarks/gpu_env.py wheels [--python 3.12] [--dest .whl]
        (`make gpu-wheels`, where PyPI can be reached) downloads the wheels of everything the check
        needs but torch and torchvision, with their dependencies, for that Python on manylinux x86_64;
        Optuna's too, which only `mle6 tune`'s test and step use (without it they skip).

torch and torchvision are the box's own (a CUDA build): never carried, only checked.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# module -> the distribution that brings it, for everything the check imports (mle6cli's own
# requirements, its tests' runner); torch and torchvision are the box's, the rest can be carried
BOX = {"torch": "torch", "torchvision": "torchvision"}
CARRIED = {
    "numpy": "numpy",
    "typer": "typer",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "scipy": "scipy",
    "h5py": "h5py",
    "PIL": "pillow",
    "torchsummary": "torch-summary",
    "pytest": "pytest",
}
if sys.version_info < (3, 11):
    CARRIED["tomli"] = "tomli"
# what only some steps use: missing, the check goes on and those skip (`mle6 tune`'s test and step need Optuna)
OPTIONAL = {"optuna": "optuna"}
# the lower bounds of pyproject.toml, for the wheels
BOUNDS = {"numpy": ">=1.24", "matplotlib": ">=3.7", "typer": ">=0.12", "rich": ">=13", "scipy": ">=1.10"}
BOUNDS |= {"h5py": ">=3.8", "pillow": ">=9.1", "torch-summary": ">=1.4.5", "pytest": ">=8", "tomli": ">=1.1"}
BOUNDS |= {"optuna": ">=3.6"}  # as pyproject.toml's tune extra
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


# ---------------------------------------------------------------- check


def missing_modules(modules=None) -> list[tuple[str, str, str]]:
    """(module, distribution, why) for each module that does not import, in the order given."""
    out = []
    for module, dist in (modules or {**BOX, **CARRIED}).items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            lacking = getattr(exc, "name", None)
            if lacking and lacking.split(".")[0] != module:
                why = f"needs {lacking.split('.')[0]}, which is missing"
            else:
                why = "not installed" if isinstance(exc, ModuleNotFoundError) else f"fails: {exc}"
            out.append((module, dist, why))
        except Exception as exc:  # a package that is there but broken
            out.append((module, dist, f"fails: {type(exc).__name__}: {exc}"))
    return out


def check_lines(missing: list[tuple[str, str, str]]) -> list[str]:
    """What `check` prints when something is missing: one line a module, then how to bring them."""
    where = f"Python {platform.python_version()} ({sys.executable})"
    lines = [f"gpu_check: {len(missing)} module{'s' if len(missing) != 1 else ''} missing for the check on {where}:"]
    lines += [f"  {module:<13} {dist:<14} {why}" for module, dist, why in missing]
    box = [m for m, _, _ in missing if m in BOX]
    carried = [m for m, _, _ in missing if m not in BOX]
    if box:
        lines.append(
            "  torch and torchvision are the box's own (a CUDA build of torch and the torchvision made for it): "
            "run the check with a python3 that has them (GPU_CHECK_PYTHON=...)"
        )
    if carried:
        which = "the others" if box else "them"
        lines.append(
            f"  bring {which} as wheels: where PyPI can be reached, `make gpu-wheels GPU_PYTHON={python_version()}` "
            "writes them into .whl/; copy that folder into this repository here and run the check again "
            "(it unpacks them itself: no pip, no network)"
        )
    return lines


# ---------------------------------------------------------------- install


def wheel_fits(name: str, version: str | None = None, machine: str | None = None) -> bool:
    """Whether a wheel file's tags fit this Python (`version` "3.12") and machine (x86_64, aarch64)."""
    version = version or python_version()
    machine = machine or platform.machine()
    parts = name[: -len(".whl")].split("-")
    if len(parts) < 5:
        return False
    pythons, abis, platforms = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    cp = "cp" + version.replace(".", "")
    python_ok = any(t in (cp, "py3", f"py{cp[2:]}") or t == "py2.py3" for t in pythons)
    abi_ok = any(t in ("none", cp, "abi3") for t in abis)
    if "abi3" in abis and not python_ok:  # cp38-abi3: any CPython from 3.8 on
        python_ok = any(t.startswith("cp3") and int(t[3:] or 0) <= int(cp[3:]) for t in pythons)
    platform_ok = any(t == "any" or (sys.platform.startswith("linux") and t.endswith(machine)) for t in platforms)
    return python_ok and abi_ok and platform_ok


def wheel_modules(wheel: zipfile.ZipFile) -> set[str]:
    """The top-level modules a wheel installs (from its file list; top_level.txt is optional)."""
    names = set()
    for entry in wheel.namelist():
        parts = entry.split("/")
        if parts[0].endswith(".dist-info"):
            continue
        if parts[0].endswith(".data"):  # <name>.data/purelib/<module>/...
            if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                continue
            parts = parts[2:]
        top = parts[0]
        if len(parts) == 1:  # a module file beside the packages
            if not top.endswith((".py", ".so", ".pyd")):
                continue
            top = top.split(".")[0]
        names.add(top)
    names.discard("__pycache__")
    return names


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def unpack(wheel: zipfile.ZipFile, target: Path) -> None:
    """What an installer does with a wheel's files: the package folders into `target`, as they are."""
    for info in wheel.infolist():
        parts = info.filename.split("/")
        if parts[0].endswith(".data"):
            if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                continue  # scripts, headers, data files: nothing the check uses
            rel = "/".join(parts[2:])
        else:
            rel = info.filename
        if not rel or rel.endswith("/"):
            continue
        path = (target / rel).resolve()
        if not path.is_relative_to(target.resolve()):
            raise ValueError(f"{wheel.filename}: {info.filename} points outside the target")
        path.parent.mkdir(parents=True, exist_ok=True)
        with wheel.open(info) as src:
            path.write_bytes(src.read())


def install(wheels: Path, target: Path, version: str | None = None) -> list[str]:
    """Unpack into `target` each fitting wheel whose modules are all missing; returns their names."""
    done = []
    if not wheels.is_dir():
        return done
    target.mkdir(parents=True, exist_ok=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    for path in sorted(wheels.glob("*.whl")):
        if not wheel_fits(path.name, version):
            continue
        with zipfile.ZipFile(path) as wheel:
            modules = wheel_modules(wheel)
            if not modules or any(importable(m) for m in modules):
                continue  # already here (the box's own version wins)
            unpack(wheel, target)
        importlib.invalidate_caches()
        done.append(path.name)
    return done


# ---------------------------------------------------------------- wheels (where PyPI can be reached)


def requirements(version: str) -> list[str]:
    dists = [d for d in {**CARRIED, **OPTIONAL}.values() if d != "tomli"]
    if tuple(int(x) for x in version.split(".")) < (3, 11):
        dists.append("tomli")
    return [f"{d}{BOUNDS.get(d, '')}" for d in dists]


def download(version: str, dest: Path) -> int:
    if not re.fullmatch(r"3\.\d+", version):
        raise SystemExit(f"gpu_env: --python takes a version like 3.12, got {version!r}")
    argv = [sys.executable, "-m", "pip", "download", "--dest", str(dest), "--only-binary=:all:"]
    argv += [f"--platform={p}" for p in PLATFORMS]
    argv += ["--python-version", version, "--implementation", "cp", *requirements(version)]
    print(" ".join(argv))
    return subprocess.run(argv).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    inst = sub.add_parser("install", help="unpack the wheels that bring missing modules")
    inst.add_argument("--wheels", type=Path, default=REPO / ".whl")
    inst.add_argument("--target", type=Path, required=True)
    sub.add_parser("check", help="list the modules the check needs that do not import")
    wheels = sub.add_parser("wheels", help="download the wheels the check needs (make gpu-wheels)")
    wheels.add_argument("--python", default=python_version(), help="the GPU box's Python version (default: this one)")
    wheels.add_argument("--dest", type=Path, default=REPO / ".whl")
    args = parser.parse_args(argv)
    if args.what == "install":
        done = install(args.wheels, args.target)
        if done:
            print(f"unpacked into {args.target}: {' '.join(done)}")
        elif args.wheels.is_dir():
            print(f"{args.wheels}: nothing to unpack (every module its wheels give is already here)")
        else:
            print(f"no {args.wheels.name}/ folder: nothing to unpack")
        return 0
    if args.what == "check":
        missing = missing_modules()
        if missing:
            print("\n".join(check_lines(missing)))
            return 3
        print(f"every module the check needs imports on Python {platform.python_version()}")
        for module, dist, why in missing_modules(OPTIONAL):
            print(f"optional: {module} ({dist}) {why}: what uses it skips (make gpu-wheels brings it)")
        return 0
    return download(args.python, args.dest)


if __name__ == "__main__":
    sys.exit(main())
