"""The exercise's models: parameter counts, shapes and the torch-summary table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mle6cli.models import CNNClassifier, ConvAutoencoder, LinearAutoencoder, count_parameters

GOLDEN = Path(__file__).parent / "golden"


def test_cnn_parameters_and_shape():
    model = CNNClassifier()
    assert count_parameters(model) == 131_958
    out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 6)
    assert torch.allclose(out.exp().sum(1), torch.ones(2))  # log-probabilities


@pytest.mark.parametrize(("d", "params"), [(3, 20_548), (10, 42_507), (100, 324_837), (250, 795_387)])
def test_conv_autoencoder(d, params):
    model = ConvAutoencoder(d)
    assert count_parameters(model) == params
    x = torch.rand(2, 1, 28, 28)
    assert model.encode(x).shape == (2, d)
    assert model(x).shape == (2, 1, 28, 28)
    assert torch.equal(model.decode(model.encode(x)), model(x))


@pytest.mark.parametrize("k", [1, 10, 784])
def test_linear_autoencoder(k):
    model = LinearAutoencoder(k)
    assert count_parameters(model) == 2 * 784 * k
    assert all(name.endswith("weight") for name, _ in model.named_parameters())
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)


def test_summary_cnn_is_the_exercise_table(runner, app):
    result = runner.invoke(app, ["summary", "cnn"])
    assert result.exit_code == 0
    assert result.stdout == (GOLDEN / "summary_cnn.txt").read_text()
    assert "Total params: 131,958" in result.stdout.splitlines()


def test_summary_json(runner, app):
    result = runner.invoke(app, ["summary", "ae", "--latent-dim", "3", "--json"])
    doc = json.loads(result.stdout)
    assert doc["model"] == "ae" and doc["total_params"] == 20_548 == doc["trainable_params"]
    assert [layer["type"] for layer in doc["layers"]][:2] == ["Sequential", "Conv2d"]
    doc = json.loads(runner.invoke(app, ["summary", "linear-ae", "--latent-dim", "5", "--json"]).stdout)
    assert doc["total_params"] == 2 * 784 * 5


def test_summary_refuses_unknown_model(runner, app):
    result = runner.invoke(app, ["summary", "vgg"])
    assert result.exit_code == 2
    assert "unknown model 'vgg'; choose one of cnn, ae, linear-ae" in result.stderr
