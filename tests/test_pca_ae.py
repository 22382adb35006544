"""pca-ae: the exact optimum against numpy's SVD, principal angles, the CLI and --compare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mle6cli.tasks.pca import principal_angles_deg, projection_images, projection_mse, singular_basis
from tests.conftest import shared_path
from tests.mnist_helpers import TINY, tiny_synthetic  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_images():
    """60 random sparse 'images' (N, 1, 28, 28) uint8: an uncentred matrix with a large mean."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (60, 784)) * (rng.random((60, 784)) < 0.3)
    return torch.from_numpy(x.astype(np.uint8)).reshape(60, 1, 28, 28)


def _numpy_optimum(train: np.ndarray, test: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """The oracle: numpy's SVD of the uncentred training matrix, projection of the test rows."""
    _, _, vt = np.linalg.svd(train, full_matrices=False)
    v = vt[:k].T
    return float(((test - test @ v @ v.T) ** 2).mean()), v


@pytest.mark.parametrize("k", [1, 5, 30, 59, 784])
def test_optimum_matches_numpy_svd(small_images, k):
    train = small_images[:40]
    test = small_images[40:]
    train_np = train.reshape(40, -1).double().numpy() / 255
    test_np = test.reshape(20, -1).double().numpy() / 255
    basis, squared = singular_basis(train)
    assert np.allclose(basis.T @ basis, np.eye(784), atol=1e-9)
    expected, v = _numpy_optimum(train_np, test_np, min(k, 40))
    if k >= 40:  # the training rows span only 40 dims: beyond that the subspace is not unique
        expected = float(((test_np - test_np @ basis[:, :k] @ basis[:, :k].T) ** 2).mean())
    assert projection_mse(test, basis, [k])[k] == pytest.approx(expected, abs=1e-12)
    assert np.sqrt(squared[:5]) == pytest.approx(np.linalg.svd(train_np, compute_uv=False)[:5], rel=1e-9)
    if k < 40:
        # the same subspace as numpy's (singular vectors are unique only up to sign)
        assert np.allclose(basis[:, :k] @ basis[:, :k].T, v @ v.T, atol=1e-8)
        pictures = projection_images(test, basis[:, :k])
        assert np.allclose(pictures, test_np @ v @ v.T, atol=1e-9)


def test_uncentred_optimum_beats_any_other_rank_k_projection(small_images):
    """Eckart–Young on the training matrix: random and centred-PCA subspaces do worse."""
    train = small_images[:40]
    x = train.reshape(40, -1).double().numpy() / 255
    basis, _ = singular_basis(train)
    best = projection_mse(train, basis, [5])[5]
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(784, 5)))
    assert best < float(((x - x @ q @ q.T) ** 2).mean())
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    centred = vt[:5].T
    assert best < float(((x - x @ centred @ centred.T) ** 2).mean())


def test_principal_angles_known_values():
    e = np.eye(784)
    a = e[:, [0, 1]]
    t1, t2 = math.radians(10.0), math.radians(70.0)
    b = np.column_stack(
        [math.cos(t1) * e[:, 0] + math.sin(t1) * e[:, 2], math.cos(t2) * e[:, 1] + math.sin(t2) * e[:, 3]]
    )
    assert principal_angles_deg(a, 3.0 * b) == pytest.approx([10.0, 70.0], abs=1e-9)
    assert principal_angles_deg(a, a @ np.array([[2.0, 1.0], [0.5, 3.0]])) == pytest.approx([0.0, 0.0], abs=1e-6)


def test_principal_angles_against_an_independent_computation():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(784, 6)), rng.normal(size=(784, 6))
    b[:, :3] = a[:, :3] + 0.3 * rng.normal(size=(784, 3))
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cosines = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1)
    expected = sorted(np.degrees(np.arccos(cosines)))
    assert principal_angles_deg(a, b) == pytest.approx(expected, abs=1e-6)


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.slow
def test_cli_json_files_and_figures(runner, app, tmp_path):
    result = runner.invoke(
        app, ["pca-ae", "--synthetic", "--latent-dim", "6", "--epochs", "2", "--device", "cpu", "--out", "p", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    expected_keys = {"latent_dim", "train_loss", "test_loss", "linear_ae_test_mse", "pca_test_mse", "ratio"}
    assert set(doc) >= expected_keys | {"principal_angles_deg", "run_dir"}
    assert doc["latent_dim"] == 6 and len(doc["train_loss"]) == 2 and doc["run_dir"] == "p"
    assert doc["linear_ae_test_mse"] == doc["test_loss"][-1]
    assert doc["ratio"] == pytest.approx(doc["linear_ae_test_mse"] / doc["pca_test_mse"], rel=1e-12)
    angles = doc["principal_angles_deg"]
    assert len(angles) == 6 and all(0 <= a <= 90 for a in angles) and angles == sorted(angles)
    # the optimum, recomputed here with numpy on the same synthetic digits
    from mle6cli.data.mnist import SYNTHETIC_SEED, synthetic_mnist

    data = synthetic_mnist(SYNTHETIC_SEED, *TINY)
    train = data.train_x.reshape(len(data.train_x), -1).double().numpy() / 255
    test = data.test_x.reshape(len(data.test_x), -1).double().numpy() / 255
    assert doc["pca_test_mse"] == pytest.approx(_numpy_optimum(train, test, 6)[0], abs=1e-10)
    names = {p.name for p in (tmp_path / "p").iterdir()}
    assert {"metrics.csv", "summary.json", "config.json", "pca_ae_losses.png", "pca_ae_reconstructions.png"} <= names
    assert "SYNTHETIC" in result.stderr


@pytest.mark.usefixtures("tiny_synthetic")
def test_cli_human_output(runner, app):
    result = runner.invoke(app, ["pca-ae", "--synthetic", "--latent-dim", "3", "--epochs", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "linear autoencoder 784→3→784, 1 epoch — SYNTHETIC data" in result.stdout
    assert "exact optimum (SVD) test" in result.stdout and "principal angles" in result.stdout


@pytest.mark.parametrize("k", ["0", "785", "-3"])
def test_latent_dim_out_of_range(runner, app, tmp_path, k):
    result = runner.invoke(app, ["pca-ae", "--synthetic", "--latent-dim", k])
    assert result.exit_code == 2
    assert f"Invalid value for '--latent-dim': latent dim must be between 1 and 784, got {k}" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.slow
def test_compare_with_a_train_ae_run(runner, app, tmp_path):
    trained = runner.invoke(
        app,
        ["train-ae", "--synthetic", "--latent-dims", "2,8", "--epochs", "1", "--batch-size", "64"]
        + ["--device", "cpu", "--out", "ae", "--json", "-q"],
    )
    assert trained.exit_code == 0, trained.output
    conv = {r["latent_dim"]: r["final_test_mse"] for r in json.loads(trained.stdout)["runs"]}
    result = runner.invoke(
        app, ["pca-ae", "--synthetic", "--epochs", "1", "--device", "cpu", "--compare", "ae", "--out", "p", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["compare"]
    assert [r["latent_dim"] for r in rows] == [2, 8]
    basis, _ = singular_basis_of_tiny(TINY)
    for r in rows:
        assert r["conv_ae_test_mse"] == conv[r["latent_dim"]]  # the same test images, the same model
        assert r["pca_test_mse"] == pytest.approx(basis[r["latent_dim"]], rel=1e-9)
        assert r["better"] == ("conv AE" if r["conv_ae_test_mse"] < r["pca_test_mse"] else "PCA")
    human = runner.invoke(app, ["pca-ae", "--synthetic", "--epochs", "1", "--device", "cpu", "--compare", "ae"])
    assert "conv AE test MSE" in human.stdout and "PCA test MSE" in human.stdout


def singular_basis_of_tiny(sizes):
    from mle6cli.data.mnist import SYNTHETIC_SEED, synthetic_mnist

    data = synthetic_mnist(SYNTHETIC_SEED, *sizes)
    basis, squared = singular_basis(data.train_x)
    return projection_mse(data.test_x, basis, [2, 8]), squared


@pytest.mark.usefixtures("tiny_synthetic")
def test_compare_refuses_other_data_and_non_runs(runner, app, tmp_path):
    result = runner.invoke(app, ["pca-ae", "--synthetic", "--compare", "missing"])
    assert result.exit_code == 1
    assert "Error: --compare: missing is not a finished train-ae run (no such folder)" in result.stderr
    (tmp_path / "real").mkdir()
    summary = {"command": "train-ae", "data": {"synthetic": False, "n_test": 2000}, "runs": []}
    (tmp_path / "real" / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["pca-ae", "--synthetic", "--epochs", "1", "--compare", "real", "--out", "p"])
    assert result.exit_code == 1
    assert "was trained on other data (real, 2000 test images); this run uses synthetic data with 128" in result.stderr
    assert not (tmp_path / "p").exists()  # refused before the run folder was made


@pytest.mark.realdata
@pytest.mark.slow
def test_real_digits_optimum(runner, app):
    root = shared_path("mnist-mini")
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip("../shared/data/mnist-mini is not here")
    result = runner.invoke(
        app, ["pca-ae", "--data-dir", str(root), "--latent-dim", "10", "--epochs", "1", "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # numpy's SVD of the 8000 × 784 training matrix gives 0.035367 at k=10 (benchmarks/mnist_ae.py)
    assert doc["pca_test_mse"] == pytest.approx(0.035367, abs=1e-6)
    assert doc["ratio"] > 0.95
