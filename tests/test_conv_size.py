"""conv-size: the integer formula against real torch layers, and clean refusals."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

pytest.importorskip("hypothesis")  # the property tests' generator (the dev extra has it)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mle6cli.errors import ConvSizeError
from mle6cli.tasks.maths import ConvGeometry, cnn_trace, conv_output, parse_pair
from mle6cli.tasks.verify import torch_cnn_shapes, torch_layer

small = st.integers(min_value=-1, max_value=9)


def torch_shape_or_none(geom: ConvGeometry):
    """What torch itself does with the geometry: the output (H, W), or None when it refuses.

    ConvTranspose2d returns an empty tensor where the formula gives 0; a size-0 output is no
    output, and we refuse it like the negative sizes torch refuses.
    """
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = torch_layer(geom)(torch.zeros(1, 1, *geom.input))
    except (RuntimeError, ValueError, TypeError):
        return None
    shape = tuple(out.shape[-2:])
    return None if min(shape) == 0 else shape


def ours_or_none(geom: ConvGeometry):
    try:
        return conv_output(geom).output
    except ConvSizeError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    kh=st.integers(1, 9),
    kw=st.integers(1, 9),
    ph=st.integers(0, 6),
    pw=st.integers(0, 6),
    sh=st.integers(1, 5),
    sw=st.integers(1, 5),
    dh=st.integers(1, 4),
    dw=st.integers(1, 4),
)
def test_conv2d_formula_matches_torch(h, w, kh, kw, ph, pw, sh, sw, dh, dw):
    geom = ConvGeometry((h, w), (kh, kw), (ph, pw), (sh, sw), (dh, dw))
    assert ours_or_none(geom) == torch_shape_or_none(geom)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    k=st.integers(1, 7),
    p=st.integers(0, 8),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
    op=st.integers(0, 4),
)
def test_conv_transpose2d_formula_matches_torch(h, w, k, p, s, d, op):
    geom = ConvGeometry((h, w), (k, k), (p, p), (s, s), (d, d), transposed=True, output_padding=(op, op))
    assert ours_or_none(geom) == torch_shape_or_none(geom)


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 30),
    k=st.integers(1, 8),
    s=st.integers(1, 3),
    d=st.integers(1, 3),
    mode=st.sampled_from(["same", "valid"]),
    transposed=st.booleans(),
)
def test_string_padding_matches_torch(h, k, s, d, mode, transposed):
    geom = ConvGeometry((h, h), (k, k), mode, (s, s), (d, d), transposed=transposed)
    assert ours_or_none(geom) == torch_shape_or_none(geom)


@settings(max_examples=200, deadline=None)
@given(h=small, k=small, p=small, s=small, d=small)
def test_non_positive_values_are_refused_like_torch(h, k, p, s, d):
    """Zero and negative sizes, strides, dilations, paddings: refused wherever torch refuses."""
    geom = ConvGeometry((h, h), (k, k), (p, p), (s, s), (d, d))
    ours = ours_or_none(geom)
    if min(h, k, s, d) < 1 or p < 0:
        assert ours is None
    else:
        assert ours == torch_shape_or_none(geom)


def test_same_padding_keeps_size_for_even_kernels():
    assert conv_output(ConvGeometry((5, 7), (4, 2), "same")).output == (5, 7)


def test_exercise_cases():
    assert conv_output(ConvGeometry((64, 64), (3, 3), "valid")).output == (62, 62)
    assert conv_output(ConvGeometry((64, 64), (3, 3), "same")).output == (64, 64)
    assert conv_output(ConvGeometry((64, 64), (3, 3), (1, 1), (2, 2))).output == (32, 32)
    up = conv_output(ConvGeometry((7, 7), (3, 3), (1, 1), (2, 2), transposed=True, output_padding=(1, 1)))
    assert up.output == (14, 14)


def test_parse_pair():
    assert parse_pair("5", "--input") == (5, 5)
    assert parse_pair("64x32", "--input") == (64, 32)
    with pytest.raises(ValueError, match="--input must be N or NxM"):
        parse_pair("abc", "--input")


def test_cnn_trace_matches_the_torch_model():
    rows = cnn_trace((64, 64))
    assert [r["shape"] for r in rows] == torch_cnn_shapes((64, 64))
    assert rows[-3] == {"layer": "Flatten", "shape": [2048]}


def test_cli_json_document(runner, app):
    result = runner.invoke(
        app, ["conv-size", "--input", "64x32", "--kernel", "3", "--padding", "1", "--stride", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    expected = {
        "input": [64, 32],
        "kernel": [3, 3],
        "padding": [1, 1],
        "stride": [2, 2],
        "dilation": [1, 1],
        "transposed": False,
        "output_padding": [0, 0],
        "output": [32, 16],
    }
    assert {k: doc[k] for k in expected} == expected


def test_cli_human_output_shows_the_formula_and_case(runner, app):
    result = runner.invoke(app, ["conv-size", "-i", "64", "-k", "3", "-p", "same"])
    assert result.exit_code == 0
    assert "H_out = floor((64 + 2 - 1·(3 - 1) - 1) / 1) + 1 = 64" in result.stdout
    assert "same" in result.stdout
    result = runner.invoke(app, ["conv-size", "-i", "64", "-k", "3", "-p", "1", "-s", "2"])
    assert "down-sampling" in result.stdout


def test_cli_verify(runner, app):
    result = runner.invoke(app, ["conv-size", "-i", "9x13", "-k", "4", "-p", "2", "-s", "3", "-d", "2", "--verify"])
    assert result.exit_code == 0, result.output
    assert "verified against torch.nn.Conv2d" in result.stdout
    result = runner.invoke(app, ["conv-size", "--model", "cnn", "--verify", "--json"])
    doc = json.loads(result.stdout)
    assert doc["features"] == 2048 and doc["verified"] is True


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-i", "0", "-k", "3"], 2, "Error: mle6 conv-size: Invalid value: --input must be positive, got 0x0"),
        (["-i", "8", "-k", "3", "-s", "0"], 2, "--stride must be positive, got 0x0"),
        (["-i", "8", "-k", "0"], 2, "--kernel must be positive, got 0x0"),
        (["-i", "8", "-k", "3", "-p", "-1"], 2, "--padding must be at least 0, got -1x-1"),
        (
            ["-i", "4", "-k", "7"],
            1,
            "Error: kernel extent 7 (kernel 7, dilation 1) is larger than the padded input 4 along H: no valid output",
        ),
        (
            ["-i", "8", "-k", "3", "-s", "2", "--transposed", "--output-padding", "2"],
            1,
            "Error: output padding 2 must be smaller than the stride (2) or the dilation (1)",
        ),
        (
            ["-i", "8", "-k", "3", "-p", "same", "-s", "2"],
            1,
            "Error: padding 'same' needs stride 1 (as in torch), got stride 2x2",
        ),
        (["-i", "abc", "-k", "3"], 2, "--input must be N or NxM with whole numbers, got 'abc'"),
        (["-i", "8", "-k", "3", "-p", "lots"], 2, "--padding must be N or NxM with whole numbers, got 'lots'"),
        (["--model", "resnet"], 2, "unknown model 'resnet'"),
        (["-i", "32", "--model", "cnn"], 1, "a 32x32 input gives 512"),
    ],
)
def test_cli_refuses_bad_input_with_one_line(runner, app, args, code, message):
    result = runner.invoke(app, ["conv-size", *args])
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert result.stdout == ""
