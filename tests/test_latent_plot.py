"""latent-plot: k-NN and silhouette against scikit-learn, the CLI on a train-ae run, clean refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the oracle (the dev extra has it)
from sklearn.metrics import silhouette_score as sk_silhouette  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from mle6cli.tasks.latent import knn_accuracy, knn_split, silhouette_score
from tests.mnist_helpers import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clusters(seed: int, n: int = 300, spread: float = 1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, 3)) * 3
    return centres[labels] + spread * rng.normal(size=(n, 3)), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_accuracy_matches_sklearn(seed):
    codes, labels = _clusters(seed)
    fit, test = knn_split(len(codes), seed=0)
    oracle = KNeighborsClassifier(n_neighbors=5).fit(codes[fit], labels[fit]).score(codes[test], labels[test])
    assert knn_accuracy(codes, labels) == pytest.approx(oracle, abs=1e-12)
    assert sorted(np.concatenate([fit, test]).tolist()) == list(range(len(codes)))
    assert len(fit) == len(codes) // 2


@pytest.mark.parametrize("seed", [0, 1])
def test_silhouette_matches_sklearn(seed):
    codes, labels = _clusters(seed)
    assert silhouette_score(codes, labels) == pytest.approx(sk_silhouette(codes, labels), abs=1e-10)


def test_silhouette_with_a_singleton_class_and_separated_clusters():
    codes, labels = _clusters(5, n=80)
    labels = labels.copy()
    labels[0] = 10  # alone in its class: scores 0, as in scikit-learn
    assert silhouette_score(codes, labels) == pytest.approx(sk_silhouette(codes, labels), abs=1e-10)
    tight, tight_labels = _clusters(5, n=200, spread=0.01)
    assert silhouette_score(tight, tight_labels) > 0.95
    assert knn_accuracy(tight, tight_labels) == 1.0


@pytest.fixture
def ae_run(runner, app, monkeypatch):
    from mle6cli.data import mnist

    monkeypatch.setattr(mnist, "SYNTHETIC_SIZES", TINY)

    def train(dims: str, out: str):
        result = runner.invoke(
            app,
            ["train-ae", "--synthetic", "--latent-dims", dims, "--epochs", "1", "--batch-size", "64"]
            + ["--device", "cpu", "--out", out, "-q"],
        )
        assert result.exit_code == 0, result.output
        return out

    return train


@pytest.mark.slow
def test_cli_on_a_run(runner, app, tmp_path, ae_run):
    run = ae_run("3", "r")
    result = runner.invoke(app, ["latent-plot", "--run", run, "--n", "100", "--out", "l.png", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["points"] == 100 and doc["plot"] == "l.png"
    assert 0.0 <= doc["knn_accuracy"] <= 1.0 and -1.0 <= doc["silhouette"] <= 1.0
    assert doc["synthetic"] is True and "SYNTHETIC" in result.stderr  # the data the model was trained on
    assert (tmp_path / "l.png").read_bytes()[:4] == b"\x89PNG"

    # the same numbers, recomputed from the checkpoint's codes with the sklearn oracle
    from mle6cli.data.mnist import SYNTHETIC_SEED, synthetic_mnist
    from mle6cli.tasks.autoencoders import load_autoencoder
    from mle6cli.tasks.latent import encode

    model, _ = load_autoencoder(tmp_path / "r" / "ae_d3.pt")
    data = synthetic_mnist(SYNTHETIC_SEED, *TINY)
    codes, labels = encode(model, data.test_x[:100]), data.test_y[:100].numpy()
    fit, test = knn_split(100)
    oracle = KNeighborsClassifier(n_neighbors=5).fit(codes[fit], labels[fit]).score(codes[test], labels[test])
    assert doc["knn_accuracy"] == pytest.approx(oracle, abs=1e-12)
    assert doc["silhouette"] == pytest.approx(sk_silhouette(codes, labels), abs=1e-9)

    by_file = runner.invoke(app, ["latent-plot", "--checkpoint", "r/ae_d3.pt", "--synthetic", "--n", "100"])
    assert by_file.exit_code == 0, by_file.output
    assert "5-NN accuracy (fit on half, tested on the other half):" in by_file.stdout
    assert (tmp_path / "latent.png").exists()


@pytest.mark.slow
def test_run_without_d3_names_its_dims(runner, app, tmp_path, ae_run):
    run = ae_run("2,5", "r")
    result = runner.invoke(app, ["latent-plot", "--run", run])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --run: r has no d=3 model (it has d=2, d=5); train one with mle6 train-ae --latent-dims 3\n"
    )
    wrong = runner.invoke(app, ["latent-plot", "--checkpoint", "r/ae_d5.pt"])
    assert wrong.exit_code == 1 and "r/ae_d5.pt holds a d=5 model; latent-plot needs d=3" in wrong.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give exactly one of --run DIR or --checkpoint FILE"),
        (["--run", "a", "--checkpoint", "b"], 2, "give exactly one of --run DIR or --checkpoint FILE"),
        (["--run", "a", "--n", "3"], 2, "Invalid value for '--n': must be between 20 and 1000000, got 3"),
        (["--run", "nowhere"], 1, "Error: --run: nowhere is not a finished train-ae run (no such folder)"),
        (["--checkpoint", "none.pt"], 1, "Error: checkpoint none.pt does not exist"),
        # the figure's format is checked first: the missing checkpoint is not even looked for
        (["--checkpoint", "none.pt", "--out", "l.gif"], 1, "Error: cannot write a figure as 'l.gif': use .png, .pdf"),
    ],
)
def test_refusals(runner, app, tmp_path, args, code, message):
    result = runner.invoke(app, ["latent-plot", *args])
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_not_a_checkpoint(runner, app, tmp_path):
    import torch

    torch.save({"something": 1}, tmp_path / "x.pt")
    result = runner.invoke(app, ["latent-plot", "--checkpoint", "x.pt"])
    assert result.exit_code == 1 and "Error: x.pt is not a train-ae checkpoint" in result.stderr
