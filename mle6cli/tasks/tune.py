"""`mle6 tune <command>`: an Optuna study whose trials train together, as the members of one fused model.

The study is Optuna's (its ask-and-tell interface; its samplers and pruners), stored in a journal file
(study.journal in the run folder, or --storage: a journal file or database URL that several processes
share). Each round asks up to --parallel trials; each trial is one member per seed of one fused model
(the target task's own builders), trained by the one loop through the run protocol, so the round is an
ordinary run with resume.pt. After every epoch each trial reports its seeds' mean validation metric;
a trial the pruner stops leaves the batch at that epoch boundary (the loop's `on_epoch` retirement), and
its slot stays empty until the round ends. Finished trials are told their value, pruned ones PRUNED,
diverged ones FAIL.

Exact resume: a round is a run's members (resume.pt), the sampler is seeded afresh for each trial from
--seed and its number, and the pruners read only the storage; an interrupted round goes on from its
last save, a trial asked but never saved starts again, and a round cut while it was asked is completed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mle6cli.engine.events import Events
from mle6cli.engine.folder import default_run_dir
from mle6cli.errors import Mle6Error
from mle6cli.tasks.tune_space import grid_size
from mle6cli.tasks.tune_study import (
    JOURNAL,
    STATES,
    SURPLUS,
    asking,
    check_journal,
    make_sampler,
    open_storage,
    open_study,
    require_optuna,
    surplus,
)
from mle6cli.tasks.tune_targets import TUNE_SPECS, Target, mean


class NoTrialCompleted(Mle6Error):
    """Every trial of the study was pruned or diverged."""


# ---------------------------------------------------------------- the task


def tune(target: Target, options: dict, params) -> dict:
    """A study of the target command's member axes, run as `params` (`tasks.specs.RunParams`) says; returns
    the summary (see the module docstring)."""
    from dataclasses import replace

    from mle6cli.tasks.jobs import open_job

    optuna = require_optuna()
    spec = TUNE_SPECS[target.name]
    if params.out is None and params.resume is None:
        params = replace(params, out=default_run_dir(f"tune/{target.name}"))
    storage = options.get("storage")
    if params.resume is None and storage and "://" not in storage:  # recorded absolute: --resume works from anywhere
        options = dict(options, storage=str(check_journal(Path(storage).resolve())))
    opened = {}

    def study(config, folder: Path):
        storage, lock = open_storage(optuna, config.storage, folder)
        with asking(lock):  # one process at a time creates the study and records its options
            return open_study(optuna, storage, target, config, config.storage or str(folder / JOURNAL)), lock

    def check(config, data):  # before the folder exists: a storage elsewhere that cannot be used leaves nothing
        if config.storage is not None:
            opened["study"] = study(config, Path("."))

    job = open_job(spec, options, target.load, params, check=check)
    with job.run:
        config, run = job.config, job.run
        optuna_study, lock = opened.get("study") or study(config, run.path)
        total = min(config.trials, grid_size(config.dimensions)) if config.sampler == "grid" else config.trials
        rounds = Rounds(optuna, optuna_study, target, job, lock, total)
        study_rounds(rounds, params.events, params.stop)
        return rounds.finish()


def study_rounds(rounds: Rounds, events: Events, stop: Callable[[], bool] | None) -> None:
    """Ask, train, tell until the study has its trials. SIGINT/SIGTERM while a round trains: the round saves
    and `Interrupted` is raised (the run protocol's way); while asking, telling or writing: the study stops
    once that is done, with the same `Interrupted`."""
    from mle6cli.engine.interrupt import any_of, graceful_stop

    run = rounds.run
    with graceful_stop() as between:
        batch = rounds.interrupted()
        while batch or (batch := rounds.ask()):
            if between():  # the asked trials start again on resume
                raise run.interrupted(between.signal_number, "while asking trials")
            rounds.train(batch, any_of(stop, between))  # stopped by `between`: its signal is the round's
            rounds.tell(batch)
            rounds.write_table()
            events.note(rounds.progress())
            batch = []
            if between() or (stop is not None and stop()):
                raise run.interrupted(between.signal_number, "between rounds")


class Rounds:
    """The study's rounds in one run folder: ask, train fused, tell; the table; the best trial."""

    def __init__(self, optuna, study, target: Target, job, lock, total: int):
        self.optuna, self.study, self.target, self.job, self.lock, self.total = optuna, study, target, job, lock, total
        self.config, self.run, self.dims = job.config, job.run, job.config.dimensions
        self.owner = str(self.run.path)

    def _members(self, number: int, params: dict) -> list:
        from mle6cli.engine.loop import MemberState
        from mle6cli.engine.runs import Member

        return [Member({"trial": number, **params, "seed": s}, MemberState(seed=s)) for s in self.config.seeds]

    def _trial(self, number: int):
        frozen = self.study.get_trials(deepcopy=False)[number]
        return self.optuna.trial.Trial(self.study, frozen._trial_id)  # a running trial, for report and tell

    def interrupted(self) -> list:
        """The round a resumed run was in: its saved members whose trials still run, then the trials this
        folder asked but never saved (started again), then those of the round it was cut before asking.
        A running trial that no process owns was asked by one killed before it could say so (a live
        process names itself while it holds the lock): it is taken over."""
        with asking(self.lock):
            trials = self.study.get_trials(deepcopy=False)
            for t in trials:
                if t.state.name == "RUNNING" and "run" not in t.user_attrs and self.lock is not None:
                    self._trial(t.number).set_user_attr("run", self.owner)
            trials = self.trials()
            mine = {t.number: t for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("run") == self.owner}
            batch = [m for m in (self.run.saved_members() or []) if m.key["trial"] in mine]
            saved = {m.key["trial"] for m in batch}
            unsaved = sorted(set(mine) - saved)
            if unsaved:  # the round was cut while it was asked: ask the rest, as the whole round would have been
                start = unsaved[0]
                wanted = min(self.config.parallel, self.total - start) - sum(n >= start for n in mine)
                fresh = self._ask(min(wanted, self.total - len(trials)))
                unsaved += [t.number for t in fresh]
                mine.update({t.number: t for t in fresh})
        for number in unsaved:
            batch += self._members(number, self._params(mine[number]))
        return batch

    def _suggest(self, number: int) -> dict:
        """Draw the trial's parameters (through the sampler seeded for its number): what asking it does, and
        what a trial that a killed process asked but never drew gets on resume."""
        self.study.sampler = make_sampler(self.optuna, self.config, number)
        trial = self._trial(number)
        for d in self.dims:
            d.suggest(trial)
        return trial.params

    def _params(self, trial) -> dict:
        params = trial.params if all(d.axis.key in trial.params for d in self.dims) else self._suggest(trial.number)
        return {d.axis.key: params[d.axis.key] for d in self.dims}

    def trials(self) -> list:
        """The study's trials but the surplus ones (`tune_study.surplus`): what is counted and shown."""
        return [t for t in self.study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]

    def ask(self) -> list:
        with asking(self.lock):
            count = min(self.config.parallel, self.total - len(self.trials()))
            trials = self._ask(count)
        return [m for t in trials for m in self._members(t.number, self._params(t))]

    def _ask(self, count: int) -> list:
        """Up to `count` new trials, each drawn by a sampler seeded by --seed and its number, and named as this
        folder's at once (the caller holds the lock, if the storage has one). One another process asked
        first left this one surplus: it is told FAIL at once, never trained, and the study is full."""
        trials = []
        for _ in range(max(count, 0)):
            self.study.sampler = make_sampler(self.optuna, self.config, len(self.study.get_trials(deepcopy=False)))
            trial = self.study.ask()
            if surplus(self.study.get_trials(deepcopy=False), trial.number, self.total):
                trial.set_user_attr(SURPLUS, True)
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                break
            trial.set_user_attr("run", self.owner)
            self._suggest(trial.number)
            trials.append(self._trial(trial.number))
        return trials

    def train(self, batch: list, stop) -> None:
        from dataclasses import replace

        from mle6cli.tasks.jobs import EpochLog

        job, target, config = replace(self.job, params=replace(self.job.params, stop=stop)), self.target, self.config
        several = len(config.seeds) > 1
        trials = {n: self._trial(n) for n in dict.fromkeys(m.key["trial"] for m in batch)}

        def label(m) -> str:
            return f"trial {m.key['trial']}" + (f" seed {m.key['seed']}" if several else "")

        log = EpochLog(job, batch, target.header, trial_metrics(several), label, target.header[1:])
        train, evals = target.splits(job.data, config)
        job.train(
            batch,
            lambda group: target.build(group, config, job.data, job.device),
            train,
            evals,
            log,
            check=reporter(target.metric, trials),
        )
        log.close()

    def tell(self, batch: list) -> None:
        """Each trial of the round: FAIL (a member diverged), PRUNED (retired), or its value; the best of
        this folder so far is written as a run of the target command."""
        states = {t.number: t.state.name for t in self.study.get_trials(deepcopy=False)}
        for number, members in by_trial(batch).items():
            if states.get(number) != "RUNNING":
                continue  # told before the process was cut
            trial = self._trial(number)
            finals = [m.state.history[-1] for m in members if m.state.history]
            trial.set_user_attr("epochs", max(len(m.state.history) for m in members))
            trial.set_user_attr("final", finals)
            for metric in self.target.shown:
                if len(finals) == len(members):
                    trial.set_user_attr(metric, mean(f[metric] for f in finals))
            statuses = {m.state.status for m in members}
            if "diverged" in statuses:
                state = "diverged"
                trial.set_user_attr("state", state)
                self.study.tell(number, state=self.optuna.trial.TrialState.FAIL)
            elif "stopped" in statuses:
                state = "pruned"
                self.study.tell(number, state=self.optuna.trial.TrialState.PRUNED)
            else:
                state, value = "complete", mean(f[self.target.metric] for f in finals)
                if self.target.better(value, self.best_here()):
                    self.target.write_model(
                        self.run, self.config, trial.params, members, self.job.data, self.job.device
                    )
                self.study.tell(number, value)
            if self.config.tensorboard:
                metrics = {m: trial.user_attrs[m] for m in self.target.shown if m in trial.user_attrs}
                hparams_record(self.run, number, dict(trial.params, state=state), metrics)

    def best_here(self) -> float | None:
        values = [
            t.value
            for t in self.study.get_trials(deepcopy=False, states=(self._complete,))
            if t.user_attrs.get("run") == self.owner
        ]
        best = None
        for value in values:
            if self.target.better(value, best):
                best = value
        return best

    @property
    def _complete(self):
        return self.optuna.trial.TrialState.COMPLETE

    def rows(self) -> list[dict]:
        rows = []
        for t in self.trials():
            state = t.user_attrs.get("state") or STATES.get(t.state.name, t.state.name.lower())
            row = {"number": t.number, "state": state, **t.params}
            row["epochs"] = t.user_attrs.get("epochs", len(t.intermediate_values))
            row["value"] = t.value if t.value is not None else ""
            rows.append(dict(row, **{m: t.user_attrs.get(m, "") for m in self.target.shown}))
        return rows

    def curves(self) -> list[dict]:
        """Each trial as the figures take it: number, state, params, value (complete ones), reports by epoch."""
        states = {r["number"]: r["state"] for r in self.rows()}
        return [
            {"number": t.number, "state": states[t.number], "params": t.params,
             "value": t.value if t.state == self._complete else None, "curve": sorted(t.intermediate_values.items())}
            for t in self.trials()
        ]  # fmt: skip

    def write_table(self) -> None:
        header = ["number", "state", *(d.axis.key for d in self.dims), "epochs", "value", *self.target.shown]
        self.run.write_csv("trials.csv", header, self.rows())

    def progress(self) -> str:
        states = [r["state"] for r in self.rows()]
        done = sum(s in ("complete", "pruned", "diverged", "failed") for s in states)
        return (
            f"trials: {done}/{self.total} done ({states.count('pruned')} pruned, {states.count('diverged')} "
            f"diverged), {states.count('running')} running"
        )

    def finish(self) -> dict:
        return finish_study(self)


def hparams_record(run, number: int, params: dict, metrics: dict) -> None:
    """--tensorboard: the trial's HParams record (its parameters and state, its final validation metrics) in
    tensorboard/trial_<n>/, beside the members' curves."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run.tensorboard_dir(f"trial_{number}"))) as writer:
        writer.add_hparams(params, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")


def by_trial(members: list) -> dict[int, list]:
    out: dict[int, list] = {}
    for m in members:
        out.setdefault(m.key["trial"], []).append(m)
    return out


def trial_metrics(several: bool) -> Callable:
    def path(m) -> Path:
        folder = Path("trials") / str(m.key["trial"])
        return (folder / f"seed_{m.key['seed']}" if several else folder) / "metrics.csv"

    return path


def reporter(metric: str, trials: dict) -> Callable:
    """The loop's `on_epoch` check: every trial reports its seeds' mean, then the pruner decides (all reports
    first, so no decision depends on the order of the trials); a pruned trial, or the rest of a trial with a
    diverged member, is retired."""

    def check(group: list, rows: list, backend) -> list[int]:
        indices: dict[int, list[int]] = {}
        for j, m in enumerate(group):
            indices.setdefault(m.key["trial"], []).append(j)
        retire, reported = [], []
        for number, mine in indices.items():
            if any(group[j].state.status == "diverged" for j in mine):
                retire += [j for j in mine if rows[j] is not None]
            elif all(rows[j] is not None for j in mine):
                trials[number].report(mean(rows[j][metric] for j in mine), rows[mine[0]]["epoch"])
                reported.append(number)
        for number in reported:
            if trials[number].should_prune():
                retire += indices[number]
        return retire

    return check


def finish_study(rounds: Rounds) -> dict:
    """summary.json: the best trial, its parameters, its test metrics (this folder's best only: the test set
    is seen once, by the model the study chose)."""
    study, target, config, run = rounds.study, rounds.target, rounds.config, rounds.run
    rows = rounds.rows()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == rounds._complete]
    summary = {
        "command": target.command,
        "target": target.name,
        "metric": target.metric,
        "direction": target.direction,
        "trials": len(rows),
        "states": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "diverged", "failed")},
        "member_epochs": sum(int(r["epochs"] or 0) for r in rows) * len(config.seeds),
        "storage": config.storage or str(run.path / JOURNAL),
        "best_trial": None,
    }
    if not complete:
        run.drop_resume()
        run.finish(dict(summary, status="failed"))
        raise NoTrialCompleted(f"no trial of the study completed (see {run.path / 'trials.csv'})")

    figures = study_figures(run, rounds.curves(), rounds.dims, target.metric, target.direction == "maximize")
    best = study.best_trial
    summary.update(best_trial=best.number, best_params=best.params, best_value=best.value)
    summary["best_run_dir"] = best.user_attrs.get("run")
    if best.user_attrs.get("run") == rounds.owner:
        members = target.reload(run, config, best.number, best.params, best.user_attrs["final"])
        test = target.test(members, rounds.job.data, rounds.job.device)
        target.write_summary(run, config, best.params, members, test)
        summary.update({k: v for k, v in test.items() if k != "per_seed"}, model=str(run.path / target.name))
    return run.finish(dict(summary, figures=figures(), status="completed"))


def study_figures(run, trials: list[dict], dims, metric: str, maximize: bool):
    """Start every figure of the study (in the drawing process when one runs: `drawing.in_background`);
    returns a function that waits for them and gives their names by what they show."""
    from mle6cli import drawing
    from mle6cli.tune_plots import curves_figure, history_figure, objective_figure

    waits = {"history": drawing.in_background(history_figure, trials, metric, maximize, run.output("history.png"))}
    for d in dims:
        name = f"objective_{d.axis.key}"
        path = run.output(f"{name}.png")
        waits[name] = drawing.in_background(objective_figure, trials, d.name, d.axis.key, d.kind == "log", metric, path)
    waits["curves"] = drawing.in_background(curves_figure, trials, metric, run.output("curves.png"))
    return lambda: {name: wait().name for name, wait in waits.items()}
