"""The exercise's three models, layer for layer.

- CNNClassifier: SIGNS, 3×64×64 → 6 log-probabilities, 131,958 parameters.
- ConvAutoencoder: MNIST, 1×28×28 → latent_dim → 1×28×28 (Sigmoid), with encode/decode; 187,265 + 4,097·d parameters.
- LinearAutoencoder: 784 → k → 784 without biases (the "PCA" autoencoder), 2·784·k parameters.
"""

from __future__ import annotations

import torch
from torch import nn

SIGNS_CLASSES = 6
MNIST_SIDE = 28
MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE


class CNNClassifier(nn.Module):
    """Conv(3→4,'same')-BN-ReLU-MaxPool, Conv(4→8,'same')-BN-ReLU-MaxPool, 2048→64→6, LogSoftmax."""

    def __init__(self, num_classes: int = SIGNS_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=3, padding="same")
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3, padding="same")
        self.bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(8 * 16 * 16, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 64, 64)
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))  # (B, 4, 32, 32)
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))  # (B, 8, 16, 16)
        x = self.relu3(self.fc1(self.flatten(x)))  # (B, 64)
        return self.log_softmax(self.fc2(x))  # (B, 6)


class ConvAutoencoder(nn.Module):
    """The exercise's `ConvolutionalAutoencoder`: three stride-2 convolutions to 128×4×4, a linear
    bottleneck of `latent_dim`, and a mirrored decoder ending in a Sigmoid.

    187,265 + 4,097·d parameters. Layer indices match the sheet's `nn.Sequential`s, so a state
    dict of the sheet's class loads here unchanged. See `mle6cli.tasks.autoencoders` for why PyTorch's
    default initialisation makes it collapse to an all-black output, and how training prevents it.
    """

    def __init__(self, latent_dim: int = 64, input_channels: int = 1):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(input_channels, 32, kernel_size=3, stride=2, padding=1),  # (B, 32, 14, 14)
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),  # (B, 64, 7, 7)
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1),  # (B, 128, 4, 4)
            nn.ReLU(inplace=True),
            nn.Flatten(),  # (B, 2048)
            nn.Linear(128 * 4 * 4, latent_dim),  # (B, d)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128 * 4 * 4),  # (B, 2048)
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (128, 4, 4)),  # (B, 128, 4, 4)
            nn.ConvTranspose2d(128, 64, kernel_size=3, stride=2, padding=1, output_padding=0),  # (B, 64, 7, 7)
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 32, 14, 14)
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(
                32, input_channels, kernel_size=3, stride=2, padding=1, output_padding=1
            ),  # (B, 1, 28, 28)
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, d)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, 1, 28, 28)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class LinearAutoencoder(nn.Module):
    """784 → k → 784 with no biases: its optimum is the projection onto the top-k singular subspace."""

    def __init__(self, latent_dim: int = 10):
        super().__init__()
        if not 1 <= latent_dim <= MNIST_PIXELS:
            raise ValueError(f"latent_dim must be between 1 and {MNIST_PIXELS}, got {latent_dim}")
        self.latent_dim = latent_dim
        self.flatten = nn.Flatten()
        self.encoder = nn.Linear(MNIST_PIXELS, latent_dim, bias=False)
        self.decoder = nn.Linear(latent_dim, MNIST_PIXELS, bias=False)
        self.unflatten = nn.Unflatten(1, (1, MNIST_SIDE, MNIST_SIDE))

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, k)
        return self.encoder(self.flatten(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, k) -> (B, 1, 28, 28)
        return self.unflatten(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


# name -> (constructor, input shape without the batch dimension)
MODELS = {
    "cnn": (lambda latent_dim=None: CNNClassifier(), (3, 64, 64)),
    "ae": (lambda latent_dim=10: ConvAutoencoder(latent_dim), (1, MNIST_SIDE, MNIST_SIDE)),
    "linear-ae": (lambda latent_dim=10: LinearAutoencoder(latent_dim), (1, MNIST_SIDE, MNIST_SIDE)),
}


def build_model(name: str, latent_dim: int | None = None) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    make, _ = MODELS[name]
    return make() if latent_dim is None else make(latent_dim)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
