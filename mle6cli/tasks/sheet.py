"""`mle6 run-all`: every part of the exercise sheet, in order, into one folder, with a report.

Steps (each training step in its own sub-folder, a run of that command):
conv-size cases → gauss-conv → CNN summary → sweep-lr (+ test of the best) → train-ae →
latent-plot → pca-ae --compare → report.html / report.md beside a summary.json.

Both datasets are opened before anything trains, so a missing dataset fails in seconds. An
interrupted run-all continues with `mle6 run-all --resume DIR`: finished steps (their
summary.json) are kept, the interrupted one resumes from its resume.pt, the rest start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mle6cli.engine.checkpoints import has_resume
from mle6cli.engine.events import Events
from mle6cli.engine.folder import Outputs
from mle6cli.engine.interrupt import Interrupted
from mle6cli.engine.runs import Run
from mle6cli.tasks.maths import ConvGeometry, cnn_trace, conv_output, gauss_conv_check
from mle6cli.tasks.schema import RunAllSummary, Summary, read, write
from mle6cli.tasks.specs import (
    PCA_AE,
    RUN_ALL,
    SWEEP_LR,
    TRAIN_AE,
    AeConfig,
    CommandSpec,
    PcaAeConfig,
    RunAllConfig,
    RunParams,
    SweepLrConfig,
)

CONV_CASES = [
    ("valid", ConvGeometry((64, 64), (3, 3), "valid")),
    ("same", ConvGeometry((64, 64), (3, 3), "same")),
    ("down-sampling", ConvGeometry((64, 64), (3, 3), (1, 1), (2, 2))),
    ("up-sampling", ConvGeometry((7, 7), (3, 3), (1, 1), (2, 2), transposed=True, output_padding=(1, 1))),
]
GAUSS = (1.0, 0.5, -2.0, 1.5)  # mu1, sigma1, mu2, sigma2
STEPS = (SWEEP_LR, TRAIN_AE, PCA_AE)  # the training steps, each a run in its own sub-folder


_SWEEP, _AE, _PCA = SweepLrConfig(), AeConfig(), PcaAeConfig()  # the commands' defaults: the exercise's


@dataclass(frozen=True)
class Plan:
    lrs: tuple[float, ...] = _SWEEP.lrs
    sweep_epochs: int = _SWEEP.epochs
    batch_size: int = _SWEEP.batch_size
    ae_dims: tuple[int, ...] = _AE.latent_dims
    ae_epochs: int = _AE.epochs
    ae_batch_size: int = _AE.batch_size
    pca_dim: int = _PCA.latent_dim
    pca_epochs: int = _PCA.epochs
    latent_n: int = 2048
    gauss_samples: int = 100_000
    synthetic_signs_per_class: tuple[int, int, int] = (160, 20, 20)  # train/val/test, as the real split


FULL = Plan()
# --quick: a few minutes on 2 CPU cores; all four latent sizes stay, so every figure is there
QUICK = Plan(sweep_epochs=8, ae_epochs=2, pca_epochs=3, latent_n=1000, gauss_samples=20_000)


def total_epochs(plan: Plan) -> int:
    return len(plan.lrs) * plan.sweep_epochs + len(plan.ae_dims) * plan.ae_epochs + plan.pca_epochs


def outputs() -> Outputs:
    """What run-all writes: its report and figures, and each step's run folder."""
    return Outputs(
        files=("report.html", "report.md", "gauss_conv.png", "latent.png", "summary_cnn.txt", *CONFUSION),
        steps={spec.name: spec.outputs for spec in STEPS},
    )


def run_all(options: dict, params: RunParams | None = None, **given) -> dict:
    """Run the whole sheet into a run folder and write the report; returns the summary (also summary.json).
    `params` (or its keywords): how it runs, `RunParams`."""
    from mle6cli.data.mnist import open_mnist
    from mle6cli.engine.device import describe_device, resolve_device
    from mle6cli.tasks.classifier import load_data
    from mle6cli.tasks.jobs import folders

    params = RunParams.of(params, given)
    events = params.events
    run = params.open(RUN_ALL, options, outputs())
    with run:  # a resumed run holds its lock from the start: let it go on any failure
        config = RunAllConfig.from_options(run.options)
        device = resolve_device(config.device)
        started = time.perf_counter()

        # Open both datasets before the run folder exists: a missing one fails now, and leaves nothing behind.
        signs_options, mnist_options = _data_options(config)
        signs = load_data(SweepLrConfig.from_options(signs_options), device)
        mnist = open_mnist(AeConfig.from_options(mnist_options).spec(), device)
        if run.resumed:
            events.note(f"Resuming the run in {run.path}: finished steps are kept.")
        run.record_paths(*folders(RunAllConfig))
        run.begin(device=describe_device(device), data={"signs": signs.source, "mnist": mnist.describe()})
        run.save([], step="the maths")  # resumable from here on, even after a crash

        events.start(total_epochs(config.plan), RUN_ALL.name)
        results, figures = {}, {}
        _steps(run, config, (signs_options, mnist_options), mnist, device, results, figures, params)
        return _finish(run, config, signs, mnist, device, results, figures, started)


def _data_options(config: RunAllConfig) -> tuple[dict, dict]:
    """The options of the SIGNS step (sweep-lr) and those every MNIST step shares."""
    plan = config.plan
    signs_options = {
        "lrs": list(plan.lrs),
        "epochs": plan.sweep_epochs,
        "batch_size": plan.batch_size,
        "device": config.device,
        "data_dir": None if config.synthetic else str(Path(config.data_dir).resolve()),
        "synthetic": config.synthetic,
        **config.seed_options(),
    }
    if config.synthetic:
        signs_options["synthetic_per_class"] = list(plan.synthetic_signs_per_class)
    mnist_options = {
        "data_dir": None if config.synthetic else str(Path(config.mnist_dir).resolve()),
        "synthetic": config.synthetic,
        "download": config.download,
        "device": config.device,
        **config.seed_options(),
    }
    return signs_options, mnist_options


def _steps(run: Run, config: RunAllConfig, options: tuple, mnist, device, results, figures, params) -> None:
    """Every step in order, into `results` and `figures`; an interruption saves which step it stopped in."""
    (signs_options, mnist_options), plan, events = options, config.plan, params.events
    counter = _Counter(events)
    step = "the maths"
    try:
        _maths(run, config, results, figures, events)
        step = SWEEP_LR.name
        results["sweep_lr"] = _job(run, SWEEP_LR, signs_options, counter, params.stop, data=None)
        figures["sweep"] = run.path / SWEEP_LR.name / "sweep_curves.png"
        results["confusion"] = _confusion(run, config.device, figures)
        step = TRAIN_AE.name
        ae_options = dict(
            mnist_options, latent_dims=list(plan.ae_dims), epochs=plan.ae_epochs, batch_size=plan.ae_batch_size
        )
        ae = _job(run, TRAIN_AE, ae_options, counter, params.stop, data=mnist)
        results["train_ae"] = ae
        figures["ae_losses"] = run.path / TRAIN_AE.name / ae["figures"]["losses"]
        figures["reconstructions"] = run.path / TRAIN_AE.name / ae["figures"]["reconstructions"]
        step = "latent-plot"
        _latent(run, plan, mnist, device, results, figures, events)
        step = PCA_AE.name
        pca_options = dict(
            mnist_options,
            latent_dim=plan.pca_dim,
            epochs=plan.pca_epochs,
            batch_size=plan.ae_batch_size,
            compare=str(run.path / TRAIN_AE.name),
        )
        pca = _job(run, PCA_AE, pca_options, counter, params.stop, data=mnist, quick=config.quick)
        results["pca_ae"] = pca
        figures["pca_losses"] = run.path / PCA_AE.name / pca["figures"]["losses"]
        figures["pca_reconstructions"] = run.path / PCA_AE.name / pca["figures"]["reconstructions"]
    except Interrupted as exc:
        run.save([], status="interrupted", step=step)
        raise run.interrupted(exc.signal_number, f"in {step}") from None


def _finish(run: Run, config: RunAllConfig, signs, mnist, device, results, figures, started: float) -> dict:
    """The report, then summary.json (`started`: when the sheet started, `time.perf_counter()`)."""
    from mle6cli.engine.device import describe_device
    from mle6cli.tasks.sheet_report import write_sheet_report

    synthetic = {"signs": signs.synthetic, "mnist": mnist.synthetic}
    provenance = {
        "signs": signs.source.get("path", "synthetic"),
        "mnist": mnist.source,
        "device": describe_device(device),
        "mode": "quick (--quick: fewer epochs)" if config.quick else "full (the exercise's epochs)",
    }
    run.output("report.html"), run.output("report.md")  # what write_sheet_report writes
    html_path, md_path = write_sheet_report(run.path, results, figures, config.plan, synthetic, provenance)
    summary = RunAllSummary(
        command=RUN_ALL.name,
        quick=config.quick,
        device=str(device),
        synthetic=synthetic,
        data={"signs": provenance["signs"], "mnist": mnist.source},
        seconds=time.perf_counter() - started,
        # every training step's steps replayed from CUDA graphs
        graphs=all(results[step].get("graphs", False) for step in ("sweep_lr", "train_ae", "pca_ae")),
        results=results,
        report_html=str(html_path),
        report_md=str(md_path),
    )
    return write(run, summary)


class _Counter:
    """Turns each step's own epoch counts into one running count over the whole run."""

    def __init__(self, events: Events):
        self.events, self.offset = events, 0

    def for_step(self) -> Events:
        base = self.offset
        last = {"done": 0}

        def epoch(member: str, number: int, epochs: int, done: int, metrics: dict) -> None:
            last["done"] = done
            self.events.epoch(member, number, epochs, base + done, metrics)

        def start(total: int, description: str) -> None:
            self.offset = base + total

        return Events(start=start, epoch=epoch, note=self.events.note, section=self.events.section)


def _job(run: Run, spec: CommandSpec, options: dict, counter: _Counter, stop, *, data, **extra) -> dict:
    """One training step in its sub-folder: kept when finished, resumed when interrupted, else started."""
    sub = run.path / spec.name
    counter.events.section(f"{spec.name}")
    if run.resumed and (sub / "summary.json").is_file():
        done = read(sub)
        counter.offset += _epochs_of(done)
        return done.to_json()
    if data is not None:
        extra["data"] = data
    if run.resumed and has_resume(sub):
        params = RunParams(resume=sub, events=counter.for_step(), stop=stop)
    else:  # a new or --overwrite'd run-all folder: its step folders are ours to reuse
        params = RunParams(out=sub, overwrite=True, events=counter.for_step(), stop=stop)
    spec.run(options, params, **extra)
    return read(sub).to_json()


def _epochs_of(summary: Summary) -> int:
    """The epochs a finished step trained, for the running count."""
    runs = summary.get("runs")
    if isinstance(runs, list):
        return sum(len(r.get("history") or []) or int(r.get("epochs_done") or 0) for r in runs)
    return len(summary.get("history") or [])


def _maths(run: Run, config: RunAllConfig, results: dict, figures: dict, events: Events) -> None:
    from mle6cli.plots import gauss_conv_figure
    from mle6cli.tasks.summary import summarize

    events.section("conv-size: the exercise's special cases")
    cases = [{"case": name, **conv_output(geom).to_dict()} for name, geom in CONV_CASES]
    results["conv_size"] = {"cases": cases, "cnn_trace": cnn_trace((64, 64))}
    events.section("gauss-conv")
    report, data = gauss_conv_check(*GAUSS, samples=config.plan.gauss_samples, seed=config.seed or 0)
    figures["gauss"] = gauss_conv_figure(data, run.output("gauss_conv.png"))
    results["gauss_conv"] = report.to_dict()
    events.section("summary cnn")
    s = summarize("cnn")
    run.write_bytes("summary_cnn.txt", (s.table + "\n").encode())
    results["summary_cnn"] = {"total_params": s.total_params, "table": s.table}


CONFUSION = ("confusion.csv", "confusion.png")  # what `evaluate` writes for the chosen SIGNS model


def _confusion(run: Run, device: str, figures: dict) -> dict:
    """The chosen SIGNS model (the sweep's best) on the test split, as `mle6 evaluate` gives it."""
    from mle6cli.tasks.evaluate import evaluate

    for name in CONFUSION:
        run.output(name)
    result = evaluate(run.path / SWEEP_LR.name, out=run.path, overwrite=True, device=device)  # files declared above
    figures["confusion"] = Path(result.files["confusion_png"])
    return {
        "member": result.trained.member,
        "member_label": result.trained.label,
        "classes": list(result.trained.classes),
        "accuracy": result.accuracy,
        "matrix": result.confusion,
        "per_class": result.per_class,
    }


def _latent(run: Run, plan: Plan, mnist, device, results: dict, figures: dict, events: Events) -> None:
    from mle6cli.engine.runs import RunDirError
    from mle6cli.tasks.autoencoders import load_autoencoder
    from mle6cli.tasks.latent import find_d3_checkpoint, plot_latent

    events.section("latent-plot: the d=3 codes")
    try:
        path = find_d3_checkpoint(run.path / TRAIN_AE.name)
    except RunDirError:
        results["latent_plot"] = None  # no d=3 in this plan
        return
    model, meta = load_autoencoder(path, device)
    result = plot_latent(model, meta, mnist, plan.latent_n, run.output("latent.png"))
    results["latent_plot"] = result.to_json()
    figures["latent"] = Path(result.plot)
