"""Seeds as an axis: --seeds, members that equal single runs, statistics checked against scipy."""

from __future__ import annotations

import csv
import json
import math

import pytest
from scipy import stats as sps

from mle6cli.engine.interrupt import Interrupted
from mle6cli.tasks.classifier import sweep_lr
from mle6cli.tasks.stats import estimate, paired
from tests.conftest import StopAfter
from tests.mnist_helpers import tiny_synthetic  # noqa: F401 (fixture)
from tests.signs_helpers import signs_options, train_args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- the statistics, against scipy


def test_estimate_is_students_t_interval():
    values = [0.91, 0.88, 0.93, 0.9, 0.87]
    got = estimate(values)
    mean, sem = sum(values) / 5, sps.sem(values)
    low, high = sps.t.interval(0.95, 4, loc=mean, scale=sem)
    assert got.n == 5 and got.mean == pytest.approx(mean, abs=1e-15)
    assert got.std == pytest.approx(sps.tstd(values), rel=1e-12)
    assert (got.ci_low, got.ci_high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    assert estimate([0.5]).ci_low is None and estimate([0.5]).mean == 0.5
    assert estimate([]).mean is None
    assert estimate([1.0, float("nan"), 3.0]).n == 2  # a diverged seed is left out


def test_paired_comparison_is_the_paired_t_test():
    a = {0: 0.92, 1: 0.90, 2: 0.95, 3: 0.91, 4: 0.93}
    b = {0: 0.89, 1: 0.88, 2: 0.91, 3: 0.90, 4: 0.90, 9: 0.5}  # seed 9 has no partner: left out
    got = paired(a, b, "lr 1e-03", "lr 1e-04", "val accuracy")
    diffs = [a[s] - b[s] for s in range(5)]
    low, high = sps.t.interval(0.95, 4, loc=sum(diffs) / 5, scale=sps.sem(diffs))
    assert got.seeds == 5
    assert got.difference.ci_low == pytest.approx(low, rel=1e-12)
    assert got.difference.ci_high == pytest.approx(high, rel=1e-12)
    assert got.p_value == pytest.approx(sps.ttest_rel([a[s] for s in range(5)], [b[s] for s in range(5)]).pvalue)
    assert got.distinguishable
    half = (high - low) / 2
    assert got.sentence() == f"lr 1e-03 beats lr 1e-04 by {sum(diffs) / 5:.3f} ± {half:.3f} val accuracy (5 seeds)"
    noise = paired({0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.85, 1: 0.86, 2: 0.84}, "lr 1e-03", "lr 1e-04", "val accuracy")
    assert not noise.distinguishable
    assert noise.sentence() == "lr 1e-03 is not distinguishable from lr 1e-04 with 3 seeds"
    one = paired({0: 0.9}, {0: 0.8}, "lr 1e-03", "lr 1e-04", "val accuracy")
    assert "one seed cannot tell them apart" in one.sentence()


def test_differences_equal_but_for_rounding_give_no_warning():
    """0.9 - 0.8 and 0.8 - 0.7 differ in the last bits: scipy's t test warns of precision loss there (a line
    on the user's stderr); the comparison is a plain "beats" with a vanishing p-value."""
    import warnings

    a, b = {0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.7, 2: 0.6}
    assert len({a[s] - b[s] for s in a}) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = paired(a, b, "lr 1e-03", "lr 1e-04", "val accuracy")
    assert got.p_value < 1e-12 and got.distinguishable
    assert got.sentence() == "lr 1e-03 beats lr 1e-04 by 0.100 ± 0.000 val accuracy (3 seeds)"


# ---------------------------------------------------------------- --seeds on the command line


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-4", [0, 1, 2, 3, 4]), ("3", [3]), ("0,2,7-8", [0, 2, 7, 8]), (" 1 , 5 ", [1, 5])]
)
def test_seed_lists_and_ranges(text, seeds):
    from mle6cli.commands._options import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "4-1"], "Invalid value for '--seeds': the range 4-1 runs backwards"),
        (["--seeds", "0,x"], "Invalid value for '--seeds': 'x' is not a seed or a range; give e.g. 0,1,2 or 0-4"),
        (["--seeds", "1,0-2"], "Invalid value for '--seeds': seed 1 is listed twice"),
        (["--seeds", "0-2", "--seed", "4"], "Invalid value for '--seeds': give --seed or --seeds, not both"),
        (["--seeds", "0-5000"], "Invalid value for '--seeds': at most 1000 seeds"),
    ],
)
@pytest.mark.parametrize("command", ["train-cnn", "sweep-lr", "train-ae", "pca-ae"])
def test_bad_seed_lists_are_usage_errors(runner, app, tmp_path, command, args, message):
    result = runner.invoke(app, [command, "--synthetic", *args])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_each_seed_of_a_fused_sweep_is_the_single_run_with_that_seed(runner, app, small, tmp_path):
    many = runner.invoke(app, ["sweep-lr", "--lrs", "1e-2,1e-3", "--seeds", "3,5", *train_args(small, tmp_path / "m")])
    assert many.exit_code == 0, many.output
    one = runner.invoke(app, ["sweep-lr", "--lrs", "1e-2,1e-3", "--seed", "5", *train_args(small, tmp_path / "o")])
    assert one.exit_code == 0
    cnn = runner.invoke(app, ["train-cnn", "--lr", "1e-3", "--seed", "5", *train_args(small, tmp_path / "t")])
    assert cnn.exit_code == 0
    member = (tmp_path / "m" / "lr_1e-03" / "seed_5" / "metrics.csv").read_bytes()
    assert member == (tmp_path / "o" / "lr_1e-03" / "metrics.csv").read_bytes()
    assert member == (tmp_path / "t" / "metrics.csv").read_bytes()
    assert member != (tmp_path / "m" / "lr_1e-03" / "seed_3" / "metrics.csv").read_bytes()
    assert "(mean ± 95% CI)" in many.stdout and "seeds 3,5" in many.stdout


@pytest.mark.slow
def test_sweep_stats_files_and_json(runner, app, small, tmp_path):
    result = runner.invoke(
        app, ["sweep-lr", "--lrs", "1e-2,1e-3", "--seeds", "0-2", *train_args(small, tmp_path / "s"), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["seeds"] == [0, 1, 2] and len(doc["runs"]) == 6
    assert [(r["lr"], r["seed"]) for r in doc["runs"]] == [(lr, s) for lr in (1e-2, 1e-3) for s in (0, 1, 2)]
    configs = doc["stats"]["configs"]
    for config in configs:
        finals = [r["final"]["val_acc"] for r in doc["runs"] if r["lr"] == config["lr"]]
        assert config["val_acc"]["mean"] == pytest.approx(sum(finals) / 3, abs=1e-15)
        assert config["val_acc"]["ci_high"] - config["val_acc"]["ci_low"] == pytest.approx(
            2 * sps.t.ppf(0.975, 2) * sps.sem(finals), rel=1e-9, abs=1e-15
        )
    best = max(configs, key=lambda c: c["val_acc"]["mean"])  # no ties on this data
    assert doc["best_lr"] == best["lr"] and doc["best_val_acc"] == best["val_acc"]["mean"]
    comparison = doc["stats"]["comparison"]
    assert comparison["a"] == f"lr {'1e-02' if best['lr'] == 1e-2 else '1e-03'}" and comparison["seeds"] == 3
    with open(tmp_path / "s" / "sweep_stats.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lr"]) for r in rows] == [1e-2, 1e-3] and rows[0]["seeds"] == "3"
    assert float(rows[1]["val_acc_mean"]) == configs[1]["val_acc"]["mean"]
    for column in ("val_acc_ci_low", "val_acc_ci_high", "test_loss_ci_low"):  # plain numbers, not np.float64(…)
        assert float(rows[1][column]) == configs[1][column.split("_ci_")[0]]["ci_" + column.split("_ci_")[1]]
    with open(tmp_path / "s" / "sweep.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    assert (tmp_path / "s" / "sweep_curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_two_learning_rates_closer_than_the_noise_are_not_distinguishable(runner, app, tmp_path):
    """Synthetic hands, two learning rates 1% apart: the seeds' spread swamps the difference."""
    args = ["sweep-lr", "--synthetic", "--lrs", "1e-3,1.01e-3", "--seeds", "0-2", "--epochs", "1"]
    result = runner.invoke(app, [*args, "--batch-size", "64", "--device", "cpu", "--out", "n", "--json"])
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)["stats"]["comparison"]
    assert comparison["distinguishable"] is False
    assert comparison["sentence"].endswith("with 3 seeds") and "is not distinguishable from" in comparison["sentence"]


@pytest.mark.slow
def test_multi_seed_resume_is_byte_identical(small, tmp_path):
    options = signs_options(small, seeds=[1, 2])
    options["lrs"] = [options.pop("lr"), 1e-2]
    sweep_lr(options, out=tmp_path / "ref")
    with pytest.raises(Interrupted):
        sweep_lr(options, out=tmp_path / "cut", stop=StopAfter(4))
    sweep_lr({}, resume=tmp_path / "cut")
    for name in ("lr_1e-03/seed_1/metrics.csv", "lr_1e-02/seed_2/metrics.csv", "sweep.csv", "sweep_stats.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_train_cnn_with_seeds_reports_mean_and_ci(runner, app, small, tmp_path):
    result = runner.invoke(app, ["train-cnn", "--seeds", "0-1", *train_args(small, tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    accs = [r["test_acc"] for r in doc["runs"]]
    assert [r["seed"] for r in doc["runs"]] == [0, 1] and doc["test_acc"] == pytest.approx(sum(accs) / 2)
    assert (tmp_path / "r" / "seed_0" / "metrics.csv").is_file() and (tmp_path / "r" / "curves.png").is_file()


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.slow
def test_train_ae_seeds_equal_single_runs_and_get_statistics(runner, app, tmp_path):
    base = ["train-ae", "--synthetic", "--latent-dims", "3", "--epochs", "2", "--batch-size", "64", "--device", "cpu"]
    many = runner.invoke(app, [*base, "--seeds", "0-1", "--out", "m", "--json"])
    assert many.exit_code == 0, many.output
    one = runner.invoke(app, [*base, "--seed", "1", "--out", "o", "-q"])
    assert one.exit_code == 0
    assert (tmp_path / "m" / "seed_1" / "metrics_d3.csv").read_bytes() == (
        tmp_path / "o" / "metrics_d3.csv"
    ).read_bytes()
    (row,) = json.loads(many.stdout)["stats"]
    mses = [r["final_test_mse"] for r in json.loads(many.stdout)["runs"]]
    assert row["seeds"] == 2 and row["collapsed"] == 0
    assert row["test_mse"]["mean"] == pytest.approx(sum(mses) / 2)
    assert math.isclose(row["test_mse"]["std"], sps.tstd(mses), rel_tol=1e-12)
