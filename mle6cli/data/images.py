"""Inputs for a trained model: image files, folders of them, and .npy arrays in a dataset's layout.

Everything is read and checked before anything is computed or written, so one bad input stops
the command in one line that names it. The rule that brings a photo to a model's input:

1. only PNG and JPEG files; the pixel count is checked from the header, before any decoding
   (`MAX_PIXELS`), so a small file cannot expand into gigabytes;
2. EXIF orientation is applied (a phone's portrait photo is upright);
3. 8-bit modes only: palette and 1-bit images are converted exactly (palette lookup, 0/255),
   an alpha channel is dropped only when every pixel is opaque; 16-bit, CMYK and transparent
   images are refused (no conversion of those is exact);
4. colour to the model's channels: grey is repeated into RGB for SIGNS, RGB becomes grey for
   MNIST with ITU-R 601 luma (Pillow's "L");
5. a non-square image is centre-cropped to its largest square, then resized to the model's side
   with Pillow's antialiasing bicubic filter; an image already of the right size is untouched.
   `strict_size` refuses any other size instead.

The model then sees the pixels / 255 as float32, as it did in training (`data.splits.as_float`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mle6cli.errors import DataError

MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes to 120 MB; more is refused before decoding
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("PNG", "JPEG")


class InputError(DataError):
    """An input a model cannot be run on: not an image, damaged, of an unsupported kind, too large."""


@dataclass(frozen=True)
class Layout:
    """What a model was trained on: side × side pixels with `channels` (3: RGB, 1: grey), uint8."""

    side: int
    channels: int
    name: str  # "SIGNS", "MNIST"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.side, self.side, self.channels)

    def describe(self) -> str:
        colour = "RGB" if self.channels == 3 else "grayscale"
        return f"{self.side}x{self.side} {colour}"


SIGNS_LAYOUT = Layout(64, 3, "SIGNS")
MNIST_LAYOUT = Layout(28, 1, "MNIST")


@dataclass
class Inputs:
    """The images to run, (N, side, side, channels) uint8, their names, and what was changed."""

    names: list[str]
    pixels: np.ndarray
    resized: list[str] = field(default_factory=list)  # "name: 640x480 -> 64x64"


def read_inputs(paths: list[Path], layout: Layout, strict_size: bool = False) -> Inputs:
    """Every image in `paths` (files, folders of PNG/JPEG files, .npy arrays), checked and brought to `layout`."""
    names: list[str] = []
    arrays: list[np.ndarray] = []
    resized: list[str] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"{path} holds no PNG or JPEG images")
        elif path.is_file():
            files = [path]
        else:
            raise InputError(f"{path} does not exist")
        for file in files:
            if file.suffix.lower() == ".npy":
                array = read_npy_images(file, layout)
                names += [f"{file}[{i}]" for i in range(len(array))]
                arrays.append(array)
                continue
            image, note = read_image(file, layout, strict_size)
            names.append(str(file))
            arrays.append(image[None])
            if note:
                resized.append(f"{file}: {note}")
    pixels = np.concatenate(arrays) if arrays else np.zeros((0, *layout.shape), np.uint8)
    return Inputs(names, pixels, resized)


def read_npy_images(path: Path, layout: Layout) -> np.ndarray:
    """An .npy of uint8 images in the dataset's own layout: (N, 64, 64, 3) for SIGNS, (N, 28, 28) for
    MNIST (one image without N is accepted too); (N, side, side, channels) back."""
    from mle6cli.data.arrays import read_npy

    try:
        array = read_npy(path)
    except DataError as exc:
        raise InputError(str(exc)) from None
    own = layout.shape if layout.channels == 3 else layout.shape[:2]
    if array.dtype != np.uint8:
        raise InputError(f"{path} holds {array.dtype} values; {layout.name} images are uint8 (0..255)")
    if array.shape == own:
        array = array[None]
    if array.ndim != len(own) + 1 or array.shape[1:] != own or len(array) == 0:
        want = "x".join(map(str, own))
        raise InputError(f"{path} has shape {array.shape}; {layout.name} images are (N, {want.replace('x', ', ')})")
    return array.reshape(len(array), *layout.shape)


def read_image(path: Path, layout: Layout, strict_size: bool = False) -> tuple[np.ndarray, str | None]:
    """One PNG or JPEG as (side, side, channels) uint8, and how it was resized (None: not at all)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(path)  # reads the header only
    except UnidentifiedImageError:
        raise InputError(f"{path} is not a PNG or JPEG image") from None
    except Image.DecompressionBombError:
        raise InputError(f"{path} is too large: over {MAX_PIXELS:,} pixels (refused before decoding)") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None
    with image:
        if image.format not in FORMATS:
            raise InputError(f"{path} is a {image.format} image; give PNG or JPEG")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InputError(
                f"{path} is too large: {width}x{height} is over {MAX_PIXELS:,} pixels (refused before decoding)"
            )
        if strict_size and (width, height) != (layout.side, layout.side):
            raise InputError(f"{path} is {width}x{height}; --strict-size needs {layout.side}x{layout.side}")
        try:
            image.load()
        except Exception as exc:  # truncated data, a broken stream: Pillow raises OSError, SyntaxError, ...
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{path} is damaged or truncated ({reason})") from None
        image = _eight_bit(image, path)
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGB" if layout.channels == 3 else "L")
        image, note = _to_side(image, layout.side)
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(layout.shape), note


def _eight_bit(image, path: Path):
    """The image in an 8-bit mode Pillow converts exactly (RGB, L), or a refusal."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")  # 0 and 255
    if mode == "P":
        if "transparency" in image.info:
            raise InputError(f"{path} is a palette image with transparency; save it as RGB without transparency")
        return image.convert("RGB")  # a lookup in its own palette: exact
    if mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            raise InputError(f"{path} has transparent pixels; flatten it onto a background first")
        return image.convert(mode[:-1] if mode == "LA" else "RGB")
    if mode.startswith("I") or mode == "F":
        raise InputError(f"{path} is a 16-bit image ({mode}); the model was trained on 8-bit pixels: save it as 8-bit")
    if mode == "CMYK":
        raise InputError(f"{path} is a CMYK image; convert it to RGB with a colour-managed tool first")
    raise InputError(f"{path} has the image mode {mode}, which is not RGB or grayscale")


def _to_side(image, side: int):
    """Centre crop to the largest square, then an antialiased bicubic resize to side x side."""
    from PIL import Image

    width, height = image.size
    if (width, height) == (side, side):
        return image, None
    square = min(width, height)
    left, top = (width - square) // 2, (height - square) // 2
    image = image.crop((left, top, left + square, top + square))
    return image.resize((side, side), Image.Resampling.BICUBIC), f"{width}x{height} -> {side}x{side}"
