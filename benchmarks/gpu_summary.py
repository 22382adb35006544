"""The two Python ends of `make gpu-check` (benchmarks/gpu_check.sh).

    python3 benchmarks/gpu_summary.py env --write ENV.json
        GPU, Python, torch, CUDA and cuDNN versions and TF32's state: printed, and written for the summary.
    python3 benchmarks/gpu_summary.py report --out OUT --steps STEPS.tsv [--tests-dir DIR] --started EPOCH
                                             --budget S [--dry-run]
        ONE table from what the steps left: each step's status and time, each pytest step's counts
        (and every failed test), torchrun's recorded overhead, the bench table (bench.json), and
        every GPU goal: met, MISSED, or not measured with the reason, next to the card's name.
        Prints it, writes OUT/summary.txt and OUT/gpu_check.json, and merges the steps' junit
        files (DIR/junit-STEP.xml) into OUT/junit.xml.

It only reads what was measured: a goal is "met" or "MISSED" only from a number a step wrote,
and on a CPU rehearsal (--dry-run, or no CUDA device) no GPU goal is judged.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _bench_module():
    """bench_report.py: the bench's goals and table, standard library only (like this file)."""
    spec = importlib.util.spec_from_file_location("mle6_bench_report", HERE / "bench_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- env


def env_info() -> dict:
    info = {"python": platform.python_version(), "executable": sys.executable}
    try:
        import torch
    except ImportError as err:
        return info | {"torch": None, "error": str(err)}
    info |= {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if info["cuda_available"]:
        info |= {
            "device_count": torch.cuda.device_count(),
            "device": torch.cuda.get_device_name(0),
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            "cudnn": torch.backends.cudnn.version(),
            "nccl": ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None,
        }
    info["tf32"] = _bench_module().tf32_state()
    from importlib import metadata

    for name in ("torchvision", "numpy", "typer", "rich", "matplotlib", "scipy", "h5py", "pytest", "torch-summary"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    return info


# ---------------------------------------------------------------- tests

TEST_STEPS = ("graphs", "cuda", "torchrun")  # the pytest steps of gpu_check.sh, in the order they run


def test_summary(log: Path, junit: Path) -> dict:
    """Counts and failures of one pytest run: from its junit.xml, else (a run cut short writes none)
    from its -v log, one line per test as it ends; and pytest's own last line."""
    result = {"ran": False}
    verdicts = {}  # test id -> PASSED/FAILED/SKIPPED/ERROR
    if log.is_file():
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()]
        finals = [
            ln for ln in lines if re.match(r"^=+ .*\b(passed|failed|skipped|error|errors|deselected)\b.* =+$", ln)
        ]
        if finals:
            result["line"] = finals[-1].strip("= ")
        for ln in lines:
            m = re.match(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)\b", ln)
            if m:
                verdicts[m.group(1)] = m.group(2)
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        if not verdicts:
            return result
        values = list(verdicts.values())
        failed = [
            {"test": t, "kind": v.lower(), "message": ""} for t, v in verdicts.items() if v in ("FAILED", "ERROR")
        ]
        return result | {
            "ran": True,
            "partial": True,
            "tests": len(values),
            "passed": values.count("PASSED"),
            "failures": values.count("FAILED"),
            "errors": values.count("ERROR"),
            "skipped": values.count("SKIPPED"),
            "failed": failed,
        }
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = (node.get("message") or node.text or "").strip().splitlines()
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                failed.append({"test": name, "kind": kind, "message": (message[0] if message else "")[:160]})
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return result | {"ran": True, **counts, "failed": failed}


def tests_by_step(folder: Path) -> dict[str, dict]:
    """Each pytest step's summary, from pytest-STEP.log and junit-STEP.xml in `folder`."""
    return {name: test_summary(folder / f"pytest-{name}.log", folder / f"junit-{name}.xml") for name in TEST_STEPS}


def merge_junit(folder: Path, target: Path) -> bool:
    """One junit.xml for the whole check: every step's test suites under one <testsuites>."""
    merged = ET.Element("testsuites")
    for name in TEST_STEPS:
        try:
            root = ET.parse(folder / f"junit-{name}.xml").getroot()
        except (OSError, ET.ParseError):
            continue
        for suite in [root] if root.tag == "testsuite" else list(root.iter("testsuite")):
            suite.set("name", f"{name}: {suite.get('name', 'pytest')}")
            merged.append(suite)
    if not len(merged):
        return False
    ET.ElementTree(merged).write(target, encoding="utf-8", xml_declaration=True)
    return True


# ---------------------------------------------------------------- goals


def judge_cuda_tests(bench_module, tests: dict, steps: list[dict], report: dict | None, real_gpu: bool, why: str):
    """The first goal: every CUDA test step ran to the end with no failure, and every bench row of ours
    on CUDA replayed graphs. MISSED on evidence of a failure; not measured where evidence is missing."""
    done = {s["step"]: s for s in steps}
    counted = [t for t in tests.values() if t.get("ran")]
    total = {k: sum(t.get(k, 0) for t in counted) for k in ("passed", "failures", "errors", "skipped")}
    tally = f"{total['passed']} passed, {total['failures'] + total['errors']} failed, {total['skipped']} skipped"
    if not real_gpu:
        return {"verdict": "not measured", "measured": f"{why} (tests: {tally})"}
    problems = []
    for name in TEST_STEPS:
        step, result = done.get(name), tests.get(name, {})
        if step is None:
            problems.append(f"{name}: did not run")
        elif step["rc"] != "0":
            problems.append(f"{name}: {_status(step['rc']).lower()}")
        elif result.get("failures") or result.get("errors"):
            problems.append(f"{name}: {result['failures'] + result['errors']} failed")
    graphs = bench_module.graphs_by_row(report) if report and str(report.get("device", "")).startswith("cuda") else {}
    no_graphs = [f"{t} {'not reported' if v is None else 'ran eagerly'}" for t, v in graphs.items() if v is not True]
    if no_graphs:
        problems.append("graphs: " + ", ".join(no_graphs))
    if problems:
        return {"verdict": "MISSED", "measured": "; ".join(problems) + f" (tests: {tally})"}
    if not graphs:
        return {"verdict": "not measured", "measured": f"tests: {tally}; no CUDA bench row of ours to show graphs"}
    return {"verdict": "met", "measured": f"tests: {tally}; graphs in {', '.join(graphs)}"}


def gpu_goals(
    bench_module, report: dict | None, dry_run: bool, tests=None, steps=None, env: dict | None = None
) -> list[dict]:
    """Every GPU goal, in its fixed order: met, MISSED or not measured (with why), and on which card."""
    on_gpu = bool(report) and str(report.get("device", "")).startswith("cuda")
    no_cuda = env is not None and not env.get("cuda_available")
    measured = {}
    if report and report.get("rows"):  # judged again from the rows: a bench cut short has no "goals" yet
        measured = {g["key"]: g for g in bench_module.goals(report, on_gpu) if g.get("key")}
    rows = {r["task"]: r for r in (report or {}).get("rows", [])}
    card = (report or {}).get("device_name") or (env or {}).get("device") or "-"
    why_cpu = "rehearsal on the CPU" if dry_run else ("no CUDA device" if no_cuda else "")
    out = []
    for key, text in bench_module.GPU_GOALS.items():
        entry = {"key": key, "goal": text, "card": card}
        if key == "cuda_tests":
            real_gpu = not dry_run and not no_cuda
            entry |= judge_cuda_tests(bench_module, tests or {}, steps or [], report, real_gpu, why_cpu)
            entry["card"] = (env or {}).get("device") or card
        elif key in measured:
            entry |= {"verdict": measured[key]["verdict"], "measured": measured[key]["measured"]}
        else:
            entry |= {"verdict": "not measured", "measured": _why_not(bench_module, key, report, rows, on_gpu, dry_run)}
        out.append(entry)
    return out


def _why_not(bench_module, key: str, report: dict | None, rows: dict, on_gpu: bool, dry_run: bool) -> str:
    if report is None:
        return "no bench.json (the bench step did not run or was cut before it started)"
    task, sides = bench_module.GOAL_SIDES[key]
    row = rows.get(task)
    if key != "accuracy" and not on_gpu:
        return "rehearsal on the CPU" if dry_run else f"the bench ran on {report.get('device')}, not CUDA"
    if row is None:
        return f"no {task} row (not run, or the bench was cut before it)"
    for side in sides:
        job = bench_module.side_job(row, side)
        if not job.get("ok"):
            what = bench_module.side_label(task, side)
            if job.get("not_run"):
                return f"{what}: not run (the bench was cut before it)"
            return f"{what} failed: {job.get('error') or job.get('skipped') or '?'}"
    if key == "accuracy":
        if report.get("signs") == "synthetic":
            return "synthetic SIGNS (no gpu_data/sign_data)"
        return f"bench ran {report.get('epochs')} epochs, the goal is set at 50"
    if key == "ae_train":
        return f"bench ran {report.get('ae_epochs')} epochs x {report.get('ae_images')} images, the goal is 10 x 60000"
    return f"bench ran {report.get('epochs')} epochs, the goal is set at 50"


def torchrun_line(checks: dict | None) -> str:
    """torchrun's cost over a plain process, as its test recorded it: a figure, not a goal (torchrun
    starts a second interpreter that imports torch itself)."""
    record = (checks or {}).get("torchrun")
    if not record or record.get("overhead_seconds") is None:
        return "torchrun --nproc-per-node 1 sweep-lr: not recorded (its test did not run or failed before timing)"
    return (
        f"torchrun --nproc-per-node 1 sweep-lr, whole process: {record['overhead_seconds']:+.2f} s over the plain one "
        f"({record['torchrun_wall_seconds']:.2f} vs {record['plain_wall_seconds']:.2f} s on {record.get('device')};"
        " recorded, not a goal)"
    )


TUNE_GOAL = "tune train-cnn, 32 trials x 30 epochs on SIGNS: wall time / Optuna's usual way <= 0.1x"


def tune_goal(report: dict | None, dry_run: bool, card: str) -> dict:
    """`mle6 tune`'s GPU goal, from tune.json (benchmarks/tune.py --only tune,usual_optuna): met or MISSED only
    on CUDA at the goal's size; the figure is shown whatever the size or device."""
    entry = {"goal": TUNE_GOAL, "verdict": "not measured", "card": card}
    if report is None:
        return entry | {"measured": "no tune.json (the tune step is a run of its own: GPU_CHECK_CAPS=...,tune=300)"}
    tune, usual = report.get("tune") or {}, report.get("usual_optuna") or {}
    ratio = (report.get("goals") or {}).get("wall_time_vs_usual_optuna")
    if ratio is None:
        return entry | {"measured": "tune.json holds no wall-time ratio (a part failed)"}
    machine = report.get("machine") or {}
    figure = f"{tune['seconds']:.1f} s / {usual['seconds']:.1f} s = {ratio:.3g}x"
    figure += f" ({tune['member_epochs']} against {usual['member_epochs']} epochs)"
    if dry_run or not str(machine.get("device", "")).startswith("cuda"):
        return entry | {"measured": f"{figure}, on {machine.get('device', '?')}: not a GPU result"}
    if (report.get("trials"), report.get("epochs")) != (32, 30):
        size = f"{report.get('trials')} trials x {report.get('epochs')} epochs"
        return entry | {"measured": f"{figure}; ran {size}, the goal is set at 32 x 30"}
    return entry | {"verdict": "met" if ratio <= 0.1 else "MISSED", "measured": figure}


# ---------------------------------------------------------------- the one table


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def read_steps(path: Path) -> list[dict]:
    steps = []
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 4:
                steps.append({"step": parts[0], "rc": parts[1], "seconds": float(parts[2]), "limit": int(parts[3])})
    return steps


def _status(rc: str) -> str:
    if rc == "0":
        return "ok"
    if rc == "skipped":
        return "SKIPPED (no time left)"
    if rc == "off":
        return "SKIPPED (cap 0)"
    if rc == "optional":
        return "not run (a run of its own)"
    if rc in ("124", "137"):
        return f"TIMED OUT (rc {rc})"
    return f"FAILED (rc {rc})"


def _tests_line(name: str, result: dict) -> str:
    if not result.get("ran"):
        return f"  {name}: no results (the step did not run or was cut before its first test)"
    counts = f"{result['passed']} passed, {result['failures']} failed, {result['errors']} errors"
    counts += f", {result['skipped']} skipped"
    cut = " (cut short: counted from the log)" if result.get("partial") else ""
    return f"  {name}: {counts}{cut}" + (f"  [pytest: {result['line']}]" if result.get("line") else "")


def report_lines(args) -> tuple[list[str], dict]:
    bench_module = _bench_module()
    out = args.out
    env = _read_json(args.env) if args.env else None
    bench = _read_json(out / "bench.json")
    checks = _read_json(out / "cuda_checks.json")
    steps = read_steps(args.steps)
    tests = tests_by_step(args.tests_dir or out)
    goals = gpu_goals(bench_module, bench, args.dry_run, tests=tests, steps=steps, env=env)
    elapsed = time.time() - args.started if args.started else None

    device = (env or {}).get("device") or ("no CUDA device" if env else "device unknown (env step failed)")
    versions = f"torch {(env or {}).get('torch', '?')}, Python {(env or {}).get('python', '?')}"
    took = f", {elapsed:.0f} s of the {args.budget} s budget" if elapsed is not None else ""
    lines = [f"==== GPU check: {device}; {versions}{took} ===="]
    if env and env.get("tf32"):
        lines.append(bench_module.tf32_line(env["tf32"]))
    if args.dry_run:
        lines.append("DRY RUN on the CPU (GPU_CHECK_DRY_RUN=1): a rehearsal of the flow; nothing here is a GPU result.")
    elif env is not None and not env.get("cuda_available"):
        lines.append("NO CUDA DEVICE: the CUDA tests skipped and nothing here is a GPU result.")
    if args.data is not None and not (args.data / "sign_data" / "X_train.npy").is_file():
        lines.append(f"NO REAL DATA in {args.data} (make gpu-data): real-data tests skip, SIGNS synthetic.")

    lines.append("")
    step_rows = [["step", "status", "seconds", "limit"]]
    for s in steps:
        step_rows.append([s["step"], _status(s["rc"]), f"{s['seconds']:.1f}", str(s["limit"])])
    lines += _table(step_rows)

    lines.append("")
    lines.append(
        "tests, step by step (graphs: tests/test_graphs.py; cuda: tests/test_cuda.py -m cuda; "
        "torchrun: tests/test_cuda.py, tests/test_distributed.py -m torchrun):"
    )
    for name in TEST_STEPS:
        lines.append(_tests_line(name, tests[name]))
        for f in tests[name].get("failed", []):
            lines.append(f"    {f['kind'].upper()} {f['test']}: {f['message']}")
    lines.append(torchrun_line(checks))

    lines.append("")
    if bench and bench.get("rows"):
        lines += bench_module.render_table(bench)
        if not bench.get("complete"):
            lines.append("  (bench cut short: the rows above are what it finished)")
    else:
        lines.append("bench: no rows (see gpu_check.log)")

    lines.append("")
    goal_rows = [["GPU goal", "verdict", "measured", "card"]]
    goal_rows += [[g["goal"], g["verdict"], g["measured"], g["card"]] for g in goals]
    lines += _table(goal_rows)
    others = []
    if bench and bench.get("rows"):
        on_gpu = str(bench.get("device", "")).startswith("cuda")
        others = [g for g in bench_module.goals(bench, on_gpu) if not g.get("key")]
    for g in others:
        lines.append(f"other goal: {g['goal']}: {g['verdict']} ({g['measured']} on {g['card']})")
    tune = tune_goal(_read_json(out / "tune.json"), args.dry_run, (env or {}).get("device") or "-")
    where = "" if tune["card"] == "-" else f" on {tune['card']}"
    lines.append(f"tune's goal: {tune['goal']}: {tune['verdict']} ({tune['measured']}{where})")
    met = sum(g["verdict"] == "met" for g in goals)
    missed = sum(g["verdict"] == "MISSED" for g in goals)
    lines.append(f"GPU goals: {met} met, {missed} MISSED, {len(goals) - met - missed} not measured (of {len(goals)})")
    doc = {
        "dry_run": args.dry_run,
        "env": env,
        "elapsed_seconds": elapsed,
        "budget_seconds": args.budget,
        "steps": steps,
        "tests": tests,
        "torchrun": (checks or {}).get("torchrun"),
        "gpu_goals": goals,
        "other_goals": others,
        "tune_goal": tune,
        "bench_complete": bool(bench and bench.get("complete")),
    }
    return lines, doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    env = sub.add_parser("env")
    env.add_argument("--write", type=Path)
    rep = sub.add_parser("report")
    rep.add_argument("--out", type=Path, required=True)
    rep.add_argument("--steps", type=Path, required=True)
    rep.add_argument("--env", type=Path)
    rep.add_argument("--data", type=Path, help="the data folder the steps read (gpu_data/)")
    rep.add_argument("--started", type=float)
    rep.add_argument("--budget", type=int, default=455)
    rep.add_argument("--tests-dir", type=Path, help="where pytest-STEP.log and junit-STEP.xml are (default: --out)")
    rep.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "env":
        info = env_info()
        for key, value in info.items():
            print(f"{key}: {value}")
        if args.write:
            args.write.write_text(json.dumps(info, indent=2) + "\n")
        return 0
    lines, doc = report_lines(args)
    merge_junit(args.tests_dir or args.out, args.out / "junit.xml")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (args.out / "summary.txt").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
