"""The exercise's models: parameter counts, shapes and the torch-summary table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mle6cli.models import CNNClassifier, ConvAutoencoder, LinearAutoencoder, count_parameters

GOLDEN = Path(__file__).parent / "golden"


def test_cnn_parameters_and_shape():
    model = CNNClassifier()
    assert count_parameters(model) == 131_958
    out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 6)
    assert torch.allclose(out.exp().sum(1), torch.ones(2))  # log-probabilities


class SheetConvolutionalAutoencoder(nn.Module):
    """Exercise 3, Part 1 of the sheet, as the sheet writes it (the independent oracle)."""

    def __init__(self, input_channels=1, latent_dim=64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(input_channels, 32, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128 * 4 * 4),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (128, 4, 4)),
            nn.ConvTranspose2d(128, 64, kernel_size=3, stride=2, padding=1, output_padding=0),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, input_channels, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)


@pytest.mark.parametrize(("d", "params"), [(3, 199_556), (10, 228_235), (100, 596_965), (250, 1_211_515)])
def test_conv_autoencoder(d, params):
    model = ConvAutoencoder(d)
    assert count_parameters(model) == params == 187_265 + 4_097 * d
    x = torch.rand(2, 1, 28, 28)
    assert model.encode(x).shape == (2, d)
    assert model(x).shape == (2, 1, 28, 28)
    assert torch.equal(model.decode(model.encode(x)), model(x))


@pytest.mark.parametrize("d", [3, 10])
def test_conv_autoencoder_is_the_sheets_class(d):
    """Same state-dict keys and shapes, same initial weights and the same output for the same seed."""
    torch.manual_seed(7)
    sheet = SheetConvolutionalAutoencoder(latent_dim=d)
    torch.manual_seed(7)
    ours = ConvAutoencoder(d)
    theirs, mine = sheet.state_dict(), ours.state_dict()
    assert list(mine) == list(theirs)
    for key in theirs:
        assert mine[key].shape == theirs[key].shape, key
        assert torch.equal(mine[key], theirs[key]), key
    assert [type(m) for m in ours.modules()][1:] == [type(m) for m in sheet.modules()][1:]
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(ours(x), sheet(x))
    assert torch.equal(ours.encode(x), sheet.encode(x))
    out = ours(x)
    assert out.min() > 0 and out.max() < 1  # the Sigmoid


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
    assert doc["model"] == "ae" and doc["total_params"] == 199_556 == doc["trainable_params"]
    assert [layer["type"] for layer in doc["layers"]][:2] == ["Sequential", "Conv2d"]
    doc = json.loads(runner.invoke(app, ["summary", "linear-ae", "--latent-dim", "5", "--json"]).stdout)
    assert doc["total_params"] == 2 * 784 * 5


def test_summary_refuses_unknown_model(runner, app):
    result = runner.invoke(app, ["summary", "vgg"])
    assert result.exit_code == 2
    assert "unknown model 'vgg'; choose one of cnn, ae, linear-ae" in result.stderr
