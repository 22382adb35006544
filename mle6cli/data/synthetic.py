"""Synthetic SIGNS: drawn hands that stand in for the photos (`--synthetic`), the same for a seed."""

from __future__ import annotations

import numpy as np

from mle6cli.data.signs import CLASSES, SIDE, SPLITS, STANDARD_PER_CLASS, SignsData, arrays_to_data

_SLOTS = 5  # finger positions on the synthetic hand


def synthetic_arrays(seed: int = 0, per_class: tuple[int, int, int] = STANDARD_PER_CLASS) -> dict[str, np.ndarray]:
    """Six classes of 64×64×3 uint8 'hands': a palm with `label` raised fingers.

    Fingers sit in a random subset of five slots, so the class is the count, not a position.
    Colours, the hand's position, finger lengths and pixel noise are random. The same seed
    gives the same arrays. Splits hold `per_class` = (train, val, test) images per class,
    by default the real dataset's 160/20/20 (960/120/120 images).
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(SPLITS, per_class, strict=True):
        labels = np.repeat(np.arange(CLASSES), n)
        labels = labels[rng.permutation(len(labels))]
        images = np.empty((len(labels), SIDE, SIDE, 3), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i] = _draw_hand(rng, int(label))
        arrays[f"X_{split}"] = images
        arrays[f"Y_{split}"] = labels.astype(np.int64)
    return arrays


def _draw_hand(rng: np.random.Generator, fingers: int) -> np.ndarray:
    background = rng.uniform(0, 110, size=3)
    skin = rng.uniform(150, 255, size=3)
    image = np.broadcast_to(background, (SIDE, SIDE, 3)).copy()  # (64, 64, 3)
    dx, dy = rng.integers(-8, 9), rng.integers(-4, 5)
    left, top = 14 + dx, 40 + dy  # the palm: 36 wide, down to the bottom edge
    image[top:, left : left + 36] = skin
    for slot in np.sort(rng.choice(_SLOTS, size=fingers, replace=False)):
        x0 = left + 1 + 7 * slot + rng.integers(0, 2)
        length = rng.integers(16, 30)
        image[max(top - length, 0) : top, x0 : x0 + 5] = skin
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def synthetic_signs(device, seed: int = 0, per_class: tuple[int, int, int] = STANDARD_PER_CLASS) -> SignsData:
    """Synthetic SIGNS-like data on `device` (see `synthetic_arrays`)."""
    arrays = synthetic_arrays(seed, per_class)
    source = {"kind": "synthetic", "synthetic": True, "seed": seed, "per_class": list(per_class)}
    return arrays_to_data(arrays, device, source)
