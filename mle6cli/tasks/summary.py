"""The torch-summary table of each model, as text and as data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelSummary:
    model: str
    latent_dim: int | None
    input_shape: tuple[int, ...]
    table: str
    total_params: int
    trainable_params: int
    layers: list[dict]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "latent_dim": self.latent_dim,
            "input_shape": list(self.input_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "layers": self.layers,
        }


def summarize(name: str, latent_dim: int | None = None) -> ModelSummary:
    """Build the named model on CPU and run torch-summary over it (no printing)."""
    from torchsummary import summary

    from mle6cli.models import MODELS, build_model

    model = build_model(name, None if name == "cnn" else latent_dim)
    input_shape = MODELS[name][1]
    stats = summary(model, input_shape, verbose=0, device="cpu")
    layers = [
        {
            "name": f"{info.class_name}: {info.depth}-{info.depth_index}",
            "type": info.class_name,
            "depth": info.depth,
            "output_shape": list(info.output_size),
            "params": info.num_params,
        }
        for info in stats.summary_list
    ]
    return ModelSummary(
        model=name,
        latent_dim=None if name == "cnn" else latent_dim,
        input_shape=tuple(input_shape),
        table=str(stats),
        total_params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        layers=layers,
    )
