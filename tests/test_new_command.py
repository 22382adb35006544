"""A new training command is one task and one spec: its config's fields are its options (default,
help, bounds, declared once). This toy one (a linear map fitted to a few fixed tensors) trains, writes
its run folder, resumes, shows in --help and --print-config, and reads a --config file, through the
same machinery as the real commands."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from mle6cli.commands._training import training_command
from mle6cli.engine.folder import Outputs
from mle6cli.errors import ConfigError
from mle6cli.tasks import config as rules
from mle6cli.tasks import specs
from mle6cli.tasks.config import OptionsConfig, option
from mle6cli.tasks.schema import Summary, key
from tests.conftest import StopAfter

# ---------------------------------------------------------------- the task and its spec (layer 3)


@dataclass(frozen=True)
class ToyConfig(OptionsConfig):
    """The toy command's options, in config.json's order; its own --width, the others shared."""

    width: int = option(4, "Numbers per sample.", rules.Number("width", minimum=1, maximum=64))
    epochs: int = specs.epochs(3)
    batch_size: int = specs.batch_size(8)
    lr: float = specs.lr(1e-2)
    seeds: tuple[int, ...] = specs.seeds(0)
    device: str = specs.device("cpu")
    save_every: int = specs.save_every()
    deterministic: bool = False  # the library's own field: not an option


@dataclass
class ToyData:
    """32 fixed vectors of `width` numbers; the target is the input."""

    train_x: object
    test_x: object
    synthetic = True
    fingerprint = "toy-0"  # one fixed dataset

    def synthetic_note(self) -> str:
        return "Note: toy data."

    def describe(self) -> dict:
        return {"source": {"kind": "toy"}, "synthetic": True, "sizes": {"train": len(self.train_x)}}


def _load(config: ToyConfig, device) -> ToyData:
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(40, config.width, generator=generator)
    return ToyData(x[:32].to(device), x[32:].to(device))


def toy_fit(options: dict, params: specs.RunParams | None = None, **given):
    import torch

    from mle6cli.data.splits import Split
    from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
    from mle6cli.tasks.jobs import EpochLog, open_job
    from mle6cli.tasks.schema import write

    job = open_job(TOY, options, _load, specs.RunParams.of(params, given))
    with job.run:
        config, run = job.config, job.run
        members = run.members([{"seed": seed} for seed in config.seeds])
        header = RECONSTRUCT.header(["test"])
        log = EpochLog(job, members, header, lambda m: "metrics.csv", lambda m: "", header[1:])

        def build(group):
            models = []
            for m in group:
                torch.manual_seed(m.state.seed)
                models.append(torch.nn.Linear(config.width, config.width))
            return ModuleMembers(models, [config.lr] * len(group), RECONSTRUCT)

        data = job.data
        writer = job.train(members, build, Split(data.train_x), {"test": Split(data.test_x)}, log)
        log.close()
        if not writer:
            return None
        (member,) = members
        return write(run, ToySummary(command=TOY.name, final=member.state.history[-1], epochs=config.epochs))


@dataclass
class ToySummary(Summary):
    """toy-fit: the fitted map's last epoch."""

    command: str = key("toy-fit")
    final: dict = key("the last epoch's metrics: epoch, train_loss, test_loss")
    epochs: int = key("epochs trained")
    train_seconds: float = key("seconds spent training")
    resumed: int = key("how often the run was resumed")
    graphs: bool = key("whether every step ran as a replayed CUDA graph")
    run_dir: str = key("the run folder")


def _headline(summary: ToySummary) -> str:
    return f"test loss {summary.final['test_loss']:.4f}"


TOY = specs.CommandSpec(
    "toy-fit", ToyConfig, toy_fit, outputs=Outputs(files=("metrics.csv",)), headline=_headline, summary=ToySummary
)

# ---------------------------------------------------------------- the command (layer 4)


def _render(printer, summary: dict, params: dict) -> None:
    if params["json_out"]:
        printer.json(summary)
    else:
        printer.line(f"test loss {summary['final']['test_loss']:.4f}; run folder {summary['run_dir']}")


toy = training_command(
    """Fit a linear map to a few fixed vectors.

    Example: mle6 toy-fit --width 4 --epochs 3
    """,
    TOY,
    _render,
)


@pytest.fixture
def toy_app(app):
    """The app with toy-fit registered, for this test only."""
    from mle6cli.cli import Command

    before = list(app.registered_commands)
    app.command("toy-fit", cls=Command)(toy)
    yield app
    app.registered_commands[:] = before


def test_a_new_training_command_is_a_task_and_a_spec(runner, toy_app, tmp_path):
    listing = runner.invoke(toy_app, ["--help"])
    assert listing.exit_code == 0 and "toy-fit" in listing.stdout
    help_text = runner.invoke(toy_app, ["toy-fit", "--help"]).stdout
    for flag in ("--width", "--epochs", "--config", "--print-config", "--resume", "--out", "--json"):
        assert flag in help_text

    printed = runner.invoke(toy_app, ["toy-fit", "--print-config", "--width", "3", "--seed", "5"])
    assert printed.exit_code == 0, printed.output
    options = json.loads(printed.stdout)
    assert options == {
        "width": 3, "epochs": 3, "batch_size": 8, "lr": 1e-2, "seeds": [5], "device": "cpu", "save_every": 1
    }  # fmt: skip

    config_file = tmp_path / "toy.toml"
    config_file.write_text("width = 2\nepochs = 2\n")
    from_file = runner.invoke(toy_app, ["toy-fit", "--config", str(config_file), "--print-config"])
    assert from_file.exit_code == 0, from_file.output
    assert "width = 2\nepochs = 2\n" in from_file.stdout
    bad = runner.invoke(toy_app, ["toy-fit", "--width", "0"])
    assert bad.exit_code == 2 and "Invalid value for '--width': width must be between 1 and 64, got 0" in bad.stderr
    with pytest.raises(ConfigError, match="^width must be between 1 and 64, got 65$"):  # a library caller
        ToyConfig.from_options({"width": 65})

    out = tmp_path / "run"
    trained = runner.invoke(toy_app, ["toy-fit", "--out", str(out), "--json"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["epochs"] == 3 and summary["final"]["epoch"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "toy-fit" and config["options"]["width"] == 4
    assert (out / "metrics.csv").read_text().count("\n") == 4  # header and three epochs
    from mle6cli.tasks import schema

    written = json.loads((out / "summary.json").read_text())
    assert list(written)[:2] == ["schema_version", "command"] and written["schema_version"] == schema.SCHEMA_VERSION
    assert schema.read(out) == ToySummary.from_json(written) and schema.read(out).final == summary["final"]
    listed = json.loads(runner.invoke(toy_app, ["runs", str(tmp_path), "--json"]).stdout)
    (row,) = [r for r in listed if r["run_dir"] == str(out)]
    assert row["command"] == "toy-fit" and row["status"] == "finished"
    assert row["headline"] == f"test loss {summary['final']['test_loss']:.4f}"

    # cut after one epoch, then resumed from the command line: the same final loss as the whole run
    cut = tmp_path / "cut"
    from mle6cli.engine.interrupt import Interrupted

    with pytest.raises(Interrupted):
        toy_fit(dict(config["options"]), out=cut, stop=StopAfter(4))
    assert (cut / "resume.pt").exists() and not (cut / "summary.json").exists()
    changed = runner.invoke(toy_app, ["toy-fit", "--resume", str(cut), "--width", "3"])
    assert changed.exit_code == 2 and "--width would change the run being resumed" in changed.output
    resumed = runner.invoke(toy_app, ["toy-fit", "--resume", str(cut), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["final"] == summary["final"]
