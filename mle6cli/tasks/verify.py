"""Check the integer arithmetic of `maths` against real torch layers (only --verify imports this)."""

from __future__ import annotations

from mle6cli.errors import Mle6Error
from mle6cli.tasks.maths import ConvGeometry


def torch_layer(geom: ConvGeometry):
    from torch import nn

    if geom.transposed:
        return nn.ConvTranspose2d(
            1,
            1,
            geom.kernel,
            stride=geom.stride,
            padding=geom.padding,
            output_padding=geom.output_padding,
            dilation=geom.dilation,
            bias=False,
        )
    return nn.Conv2d(1, 1, geom.kernel, stride=geom.stride, padding=geom.padding, dilation=geom.dilation, bias=False)


def torch_conv_shape(geom: ConvGeometry) -> tuple[int, int]:
    """The (H, W) torch produces for this geometry; Mle6Error if torch refuses it."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch warns about even kernels with 'same'
            # the meta device: shapes only, no memory, whatever the size (a 10^6 x 10^6 input is fine)
            out = torch_layer(geom).to("meta")(torch.zeros(1, 1, *geom.input, device="meta"))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise Mle6Error(f"torch refuses this convolution: {exc}") from None
    return tuple(out.shape[-2:])


def torch_cnn_shapes(size: tuple[int, int]) -> list[list[int]]:
    """Shapes after each stage of the real CNNClassifier, in the rows of maths.cnn_trace."""
    import torch

    from mle6cli.models import CNNClassifier

    m = CNNClassifier().eval().to("meta")  # shapes only, no memory
    shapes = []
    with torch.no_grad():
        x = torch.zeros(1, 3, *size, device="meta")
        shapes.append(list(x.shape[1:]))
        for conv, bn, relu, pool in ((m.conv1, m.bn1, m.relu1, m.pool1), (m.conv2, m.bn2, m.relu2, m.pool2)):
            x = conv(x)
            shapes.append(list(x.shape[1:]))
            x = relu(bn(x))
            shapes.append(list(x.shape[1:]))
            x = pool(x)
            shapes.append(list(x.shape[1:]))
        x = m.flatten(x)
        shapes.append(list(x.shape[1:]))
        x = m.relu3(m.fc1(x))
        shapes.append(list(x.shape[1:]))
        x = m.log_softmax(m.fc2(x))
        shapes.append(list(x.shape[1:]))
    return shapes
