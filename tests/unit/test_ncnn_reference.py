"""The numpy ncnn reference (tests/ncnn_reference.py) is itself checked: layer by layer on
tiny nets whose expected outputs are worked out here by other means (explicit loops, closed
forms, literal arrays), then on the real SR models against bicubic on photos."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.ncnn_reference import FLOAT16_TAG, NcnnNet

RNG_SEED = 20240601


def _net(*layers: str, weights: bytes = b"") -> NcnnNet:
    """A net of `layers` after an Input whose blob is called `data`."""
    text = "\n".join(["7767517", f"{len(layers) + 1} 64", "Input in 0 1 data", *layers])
    return NcnnNet.load(text + "\n", weights)


def _run(net: NcnnNet, chw: np.ndarray) -> np.ndarray:
    """Forward a (C, H, W) array, return the output as (C, H, W)."""
    return net.forward(np.asarray(chw, np.float32).transpose(1, 2, 0)).transpose(2, 0, 1)


def _f32(values) -> bytes:
    return np.asarray(values, "<f4").tobytes()


def _tagged_f32(values) -> bytes:
    return struct.pack("<I", 0) + _f32(values)


def _tagged_f16(values) -> bytes:
    data = np.asarray(values, "<f2").tobytes()
    return struct.pack("<I", FLOAT16_TAG) + data + b"\0" * (-len(data) % 4)


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


# --- convolutions -------------------------------------------------------------------------


def _conv_loops(x, weight, bias, stride, dilation, pads, pad_value, groups):
    """Cross-correlation written out pixel by pixel: pads (top, bottom, left, right)."""
    top, bottom, left, right = pads
    c, h, w = x.shape
    padded = np.full((c, h + top + bottom, w + left + right), pad_value, np.float64)
    padded[:, top:top + h, left:left + w] = x
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    outh = (padded.shape[1] - (dh * (kh - 1) + 1)) // sh + 1
    outw = (padded.shape[2] - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((o, outh, outw))
    per_group_out = o // groups
    for oc in range(o):
        g = oc // per_group_out
        for i in range(outh):
            for j in range(outw):
                total = bias[oc]
                for ic in range(cg):
                    for ky in range(kh):
                        for kx in range(kw):
                            total += (weight[oc, ic, ky, kx]
                                      * padded[g * cg + ic, i * sh + ky * dh, j * sw + kx * dw])
                out[oc, i, j] = total
    return out


def test_convolution_reads_fp16_weights_and_pads_them_to_four_bytes():
    # 9 fp16 weights take 18 bytes, padded to 20: the bias after them must still be 0.5
    kernel = np.array([[1, 2, 0], [0, -1, 0.5], [0.25, 0, 3]], np.float32)  # not symmetric
    net = _net("Convolution c 1 1 data out 0=1 1=3 4=1 5=1 6=9",
               weights=_tagged_f16(kernel) + _f32([0.5]))
    x = np.arange(20, dtype=np.float32).reshape(1, 4, 5)
    padded = np.pad(x[0], 1)
    expected = np.array([[0.5 + sum(kernel[ky, kx] * padded[i + ky, j + kx]
                                    for ky in range(3) for kx in range(3))
                          for j in range(5)] for i in range(4)])
    np.testing.assert_allclose(_run(net, x)[0], expected, rtol=1e-6)


def test_convolution_geometry_and_weight_order_match_loops():
    rng = _rng()
    x = rng.standard_normal((3, 9, 10))
    weight = rng.standard_normal((4, 3, 2, 3))  # (out, in, kh, kw), kh != kw
    bias = rng.standard_normal(4)
    params = ("0=4 1=3 11=2 2=2 12=1 3=1 13=2 4=1 14=2 15=0 16=1 18=0.5 5=1 "
              f"6={weight.size}")
    net = _net(f"Convolution c 1 1 data out {params}",
               weights=_tagged_f32(weight) + _f32(bias))
    expected = _conv_loops(x, weight, bias, stride=(2, 1), dilation=(1, 2),
                           pads=(2, 1, 1, 0), pad_value=0.5, groups=1)
    np.testing.assert_allclose(_run(net, x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("pad", "pads"), [(-233, (1, 1, 0, 1)), (-234, (1, 1, 1, 0))])
def test_convolution_same_padding_puts_the_odd_pixel_where_ncnn_does(pad, pads):
    # 7 x 7, a 3-row 2-column kernel, stride 2: SAME needs 2 rows and 1 column of padding
    rng = _rng()
    x = rng.standard_normal((2, 7, 7))
    weight = rng.standard_normal((3, 2, 3, 2))
    net = _net(f"Convolution c 1 1 data out 0=3 1=2 11=3 3=2 4={pad} 6={weight.size}",
               weights=_tagged_f32(weight))
    expected = _conv_loops(x, weight, np.zeros(3), stride=(2, 2), dilation=(1, 1),
                           pads=pads, pad_value=0.0, groups=1)
    np.testing.assert_allclose(_run(net, x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("groups", "cin", "cout"), [(4, 4, 4), (2, 4, 6), (3, 6, 3)])
def test_grouped_convolution_matches_loops(groups, cin, cout):
    rng = _rng()
    x = rng.standard_normal((cin, 6, 7))
    weight = rng.standard_normal((cout, cin // groups, 3, 3))
    bias = rng.standard_normal(cout)
    net = _net(f"ConvolutionDepthWise c 1 1 data out 0={cout} 1=3 4=1 5=1 7={groups} "
               f"6={weight.size}", weights=_tagged_f16(weight) + _f32(bias))
    weight16 = weight.astype(np.float16).astype(np.float64)
    expected = _conv_loops(x, weight16, bias, stride=(1, 1), dilation=(1, 1),
                           pads=(1, 1, 1, 1), pad_value=0.0, groups=groups)
    np.testing.assert_allclose(_run(net, x), expected, rtol=1e-4, atol=1e-4)


X_FOR_ACTIVATIONS = np.linspace(-6, 6, 25)


@pytest.mark.parametrize(("spec", "expected"), [
    ("9=1", np.where(X_FOR_ACTIVATIONS > 0, X_FOR_ACTIVATIONS, 0)),
    ("9=2 -23310=1,0.1", np.where(X_FOR_ACTIVATIONS > 0, X_FOR_ACTIVATIONS,
                                  0.1 * X_FOR_ACTIVATIONS)),
    ("9=3 -23310=2,-1.5,2.5", np.clip(X_FOR_ACTIVATIONS, -1.5, 2.5)),
    ("9=4", 1 / (1 + np.exp(-X_FOR_ACTIVATIONS))),
    ("9=5", X_FOR_ACTIVATIONS * np.tanh(np.log1p(np.exp(X_FOR_ACTIVATIONS)))),
    # hardswish with alpha 1/6, beta 1/2: x * relu6(x + 3) / 6
    ("9=6 -23310=2,1.666667e-01,5.000000e-01",
     X_FOR_ACTIVATIONS * np.clip(X_FOR_ACTIVATIONS + 3, 0, 6) / 6),
])
def test_fused_activations(spec, expected):
    net = _net(f"Convolution c 1 1 data out 0=1 1=1 6=1 {spec}", weights=_tagged_f32([1.0]))
    x = X_FOR_ACTIVATIONS.reshape(1, 1, -1)
    np.testing.assert_allclose(_run(net, x)[0, 0], expected, rtol=1e-5, atol=1e-6)


def _deconv_loops(x, weight, bias, stride, dilation, output_pad):
    """Transposed convolution as a scatter: every input pixel adds its kernel-weighted copy
    into the full output; weight is (out, in, kh, kw)."""
    c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = np.zeros((o, (h - 1) * sh + dh * (kh - 1) + 1 + output_pad[0],
                    (w - 1) * sw + dw * (kw - 1) + 1 + output_pad[1]))
    out += np.asarray(bias)[:, None, None]
    for q in range(c):
        for i in range(h):
            for j in range(w):
                for p in range(o):
                    for ky in range(kh):
                        for kx in range(kw):
                            y, z = i * sh + ky * dh, j * sw + kx * dw
                            out[p, y, z] += weight[p, q, ky, kx] * x[q, i, j]
    return out


def test_deconvolution_matches_scatter_loop_then_crops_pads():
    rng = _rng()
    x = rng.standard_normal((2, 4, 5))
    weight = rng.standard_normal((3, 2, 2, 3))  # (out, in, kh, kw)
    bias = rng.standard_normal(3)
    params = "0=3 1=3 11=2 2=2 12=1 3=2 13=3 4=1 14=0 15=2 16=1 18=1 19=2 5=1"
    net = _net(f"Deconvolution d 1 1 data out {params} 6={weight.size}",
               weights=_tagged_f32(weight) + _f32(bias))
    full = _deconv_loops(x, weight, bias, stride=(3, 2), dilation=(1, 2), output_pad=(2, 1))
    expected = full[:, 0:full.shape[1] - 1, 1:full.shape[2] - 2]  # top 0 bottom 1 left 1 right 2
    np.testing.assert_allclose(_run(net, x), expected, rtol=1e-4, atol=1e-5)


def test_deconvolution_like_waifu2x_upconv():
    # 4x4 stride 2, pad 3, fp16 weights: output 2 * in - 4, the last layer of upconv_7
    rng = _rng()
    x = rng.standard_normal((2, 5, 6))
    weight = rng.standard_normal((3, 2, 4, 4)).astype(np.float16).astype(np.float64)
    bias = rng.standard_normal(3)
    net = _net(f"Deconvolution d 1 1 data out 0=3 1=4 3=2 4=3 5=1 6={weight.size}",
               weights=_tagged_f16(weight) + _f32(bias))
    full = _deconv_loops(x, weight, bias, stride=(2, 2), dilation=(1, 1), output_pad=(0, 0))
    out = _run(net, x)
    assert out.shape == (3, 6, 8)
    np.testing.assert_allclose(out, full[:, 3:-3, 3:-3], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("pad", "rows", "cols"), [(-233, (1, 1), (0, 1)),
                                                   (-234, (1, 1), (1, 0))])
def test_deconvolution_output_size_crops_like_same(pad, rows, cols):
    rng = _rng()
    x = rng.standard_normal((1, 3, 4))
    weight = rng.standard_normal((2, 1, 3, 3))
    net = _net(f"Deconvolution d 1 1 data out 0=2 1=3 3=2 4={pad} 20=8 21=5 "
               f"6={weight.size}", weights=_tagged_f32(weight))
    full = _deconv_loops(x, weight, np.zeros(2), stride=(2, 2), dilation=(1, 1),
                         output_pad=(0, 0))  # 7 x 9
    expected = full[:, rows[0]:7 - rows[1], cols[0]:9 - cols[1]]
    np.testing.assert_allclose(_run(net, x), expected, rtol=1e-4, atol=1e-5)


# --- data movement ------------------------------------------------------------------------


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_mode_0_is_pytorch(r):
    x = _rng().standard_normal((2 * r * r, 3, 4))
    out = _run(_net(f"PixelShuffle p 1 1 data out 0={r}"), x)
    assert out.shape == (2, 3 * r, 4 * r)
    for c in range(2):
        for h in range(3):
            for w in range(4):
                for i in range(r):
                    for j in range(r):
                        source = x[c * r * r + i * r + j, h, w]
                        assert out[c, h * r + i, w * r + j] == np.float32(source)


def test_pixel_shuffle_mode_1_takes_channels_outermost():
    r, outc = 2, 3
    x = _rng().standard_normal((outc * r * r, 2, 2))
    out = _run(_net(f"PixelShuffle p 1 1 data out 0={r} 1=1"), x)
    for c in range(outc):
        for h in range(2):
            for w in range(2):
                for i in range(r):
                    for j in range(r):
                        source = x[(i * r + j) * outc + c, h, w]
                        assert out[c, h * r + i, w * r + j] == np.float32(source)


def test_split_gives_every_consumer_the_same_blob():
    x = _rng().standard_normal((2, 3, 4))
    net = _net("Split s 1 2 data a b", "Sigmoid g 1 1 b sb",
               "BinaryOp m 2 1 a sb out 0=2")
    np.testing.assert_allclose(_run(net, x), x / (1 + np.exp(-x)), rtol=1e-5)


def test_concat_on_channels_appends_a_constant():
    x = _rng().standard_normal((2, 3, 4))
    constant = np.arange(36, dtype=np.float32).reshape(3, 3, 4)
    net = _net("MemoryData m 0 1 m 0=4 1=3 2=3", "Concat c 2 1 data m out 0=0",
               weights=_f32(constant))
    out = _run(net, x)
    assert out.shape == (5, 3, 4)
    np.testing.assert_allclose(out[:2], x, rtol=1e-6)
    np.testing.assert_array_equal(out[2:], constant)


@pytest.mark.parametrize(("axis", "stacked"), [(1, 1), (2, 2), (-1, 2), (-2, 1)])
def test_concat_axes_count_from_channels(axis, stacked):
    x = _rng().standard_normal((2, 3, 4))
    net = _net("Split s 1 2 data a b", "Sigmoid g 1 1 b sb", f"Concat c 2 1 a sb out 0={axis}")
    out = _run(net, x)
    first, second = np.split(out, 2, axis=stacked)
    np.testing.assert_allclose(first, x, rtol=1e-6)
    np.testing.assert_allclose(second, 1 / (1 + np.exp(-x)), rtol=1e-6)


CHANNELS_ROWS_COLS = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)


@pytest.mark.parametrize(("params", "expected"), [
    ("0=1 1=1 2=1 3=2 4=1 5=1", CHANNELS_ROWS_COLS[1:2, 1:2, 1:3]),
    ("0=1 1=0 3=-233 4=-233 5=-233 6=2 7=1", CHANNELS_ROWS_COLS[:, 0:2, 1:2]),
    ("2=1 3=-233 4=-233 5=-233", CHANNELS_ROWS_COLS[1:]),
    ("-23309=2,1,-3 -23310=2,-233,-1 -23311=2,1,2", CHANNELS_ROWS_COLS[:, 1:, 1:3]),
    ("-23309=1,1 -23310=1,2 -23311=1,0", CHANNELS_ROWS_COLS[1:2]),
    ("-23309=1,-2 -23310=1,-233 -23311=1,-1", CHANNELS_ROWS_COLS[:, :, 2:]),
])
def test_crop_forms(params, expected):
    out = _run(_net(f"Crop c 1 1 data out {params}"), CHANNELS_ROWS_COLS)
    np.testing.assert_array_equal(out, expected)


ROW = np.array([[[1, 2, 3, 4]], [[5, 6, 7, 8]]], np.float32)  # 2 channels, 1 row, 4 columns


@pytest.mark.parametrize(("params", "expected_channel_0"), [
    ("0=0 1=0 2=2 3=2 4=2", [[3, 2, 1, 2, 3, 4, 3, 2]]),
    ("0=0 1=0 2=2 3=1 4=1", [[1, 1, 1, 2, 3, 4, 4]]),
    ("0=1 1=0 2=1 3=0 4=0 5=-1.0", [[-1, -1, -1, -1, -1], [-1, 1, 2, 3, 4]]),
])
def test_padding_types(params, expected_channel_0):
    out = _run(_net(f"Padding p 1 1 data out {params}"), ROW)
    np.testing.assert_array_equal(out[0], expected_channel_0)


def test_padding_reflect_rows_and_columns():
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    out = _run(_net("Padding p 1 1 data out 0=1 1=2 2=1 3=1 4=2"), x)
    expected = [[4, 3, 4, 5, 4],
                [1, 0, 1, 2, 1],
                [4, 3, 4, 5, 4],
                [7, 6, 7, 8, 7],
                [4, 3, 4, 5, 4],
                [1, 0, 1, 2, 1]]
    np.testing.assert_array_equal(out[0], expected)


# --- element-wise -------------------------------------------------------------------------


def test_binary_op_rsub_with_scalar():
    x = _rng().standard_normal((2, 3, 4))
    out = _run(_net("BinaryOp b 1 1 data out 0=7 1=1 2=2.500000e-01"), x)
    np.testing.assert_allclose(out, 0.25 - x, rtol=1e-6)


POSITIVE = np.linspace(0.5, 3, 2 * 3 * 4).reshape(2, 3, 4)


@pytest.mark.parametrize(("op", "expected"), [
    (0, POSITIVE + 1.5), (1, POSITIVE - 1.5), (2, POSITIVE * 1.5), (3, POSITIVE / 1.5),
    (4, np.maximum(POSITIVE, 1.5)), (5, np.minimum(POSITIVE, 1.5)), (6, POSITIVE ** 1.5),
    (7, 1.5 - POSITIVE), (8, 1.5 / POSITIVE), (9, 1.5 ** POSITIVE),
    (10, np.arctan2(POSITIVE, 1.5)), (11, np.arctan2(1.5, POSITIVE)),
])
def test_binary_op_scalar_ops(op, expected):
    out = _run(_net(f"BinaryOp b 1 1 data out 0={op} 1=1 2=1.5"), POSITIVE)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


@pytest.mark.parametrize(("shape", "values_at"), [
    # MemoryData shape params, and where its value for output pixel (c, y, x) comes from
    ("0=1 1=1 2=2", lambda m, c, y, x: m[c]),  # (C, 1, 1): per channel
    ("0=4 1=1 2=1", lambda m, c, y, x: m[x]),  # (1, 1, W): per column
    ("0=1 1=3 2=1", lambda m, c, y, x: m[y]),  # (1, H, 1): per row
    ("0=2", lambda m, c, y, x: m[c]),  # 1-D as long as the channels: per channel
    ("0=4", lambda m, c, y, x: m[x]),  # any other 1-D: per column
    ("0=3 1=2", lambda m, c, y, x: m[c * 3 + y]),  # 2-D (c, h): per channel and row
])
def test_binary_op_broadcasts_constants_like_ncnn(shape, values_at):
    size = int(np.prod([int(kv.split("=")[1]) for kv in shape.split()]))
    constant = np.arange(1, size + 1, dtype=np.float32) * 0.5
    x = _rng().standard_normal((2, 3, 4))
    for op, order, combine in [(1, "data m", lambda a, b: a - b),
                               (3, "m data", lambda a, b: b / a)]:
        net = _net(f"MemoryData m 0 1 m {shape}", f"BinaryOp b 2 1 {order} out 0={op}",
                   weights=_f32(constant))
        out = _run(net, x)
        assert out.shape == x.shape
        for c, y, col in np.ndindex(*x.shape):
            expected = combine(x[c, y, col], values_at(constant, c, y, col))
            assert out[c, y, col] == pytest.approx(expected, rel=1e-5)


def test_eltwise_sum_with_coeffs_and_the_other_ops():
    x = _rng().standard_normal((2, 3, 4))
    s = 1 / (1 + np.exp(-x))
    head = ["Split s 1 3 data a b c", "Sigmoid g 1 1 b sb"]
    cases = [("0=1 -23301=3,5.000000e-01,-2.0,3.0", 0.5 * x - 2 * s + 3 * x),
             ("0=1", x + s + x), ("0=0", x * s * x), ("0=2", np.maximum(x, s))]
    for params, expected in cases:
        out = _run(_net(*head, f"Eltwise e 3 1 a sb c out {params}"), x)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6, err_msg=params)


def test_prelu_relu_clip_swish_sigmoid():
    x = _rng().standard_normal((3, 2, 5)) * 3
    cases = [
        (("PReLU p 1 1 data out 0=3",), _f32([0.1, -0.5, 2.0]),
         np.where(x < 0, x * np.array([0.1, -0.5, 2.0])[:, None, None], x)),
        (("PReLU p 1 1 data out 0=1",), _f32([0.25]), np.where(x < 0, 0.25 * x, x)),
        (("ReLU r 1 1 data out",), b"", np.maximum(x, 0)),
        (("ReLU r 1 1 data out 0=2.000000e-01",), b"", np.where(x < 0, 0.2 * x, x)),
        (("Clip c 1 1 data out 0=-1.0 1=5.000000e-01",), b"", np.clip(x, -1, 0.5)),
        (("Swish s 1 1 data out",), b"", x / (1 + np.exp(-x))),
        (("Sigmoid s 1 1 data out",), b"", 1 / (1 + np.exp(-x))),
    ]
    for layers, weights, expected in cases:
        out = _run(_net(*layers, weights=weights), x)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6, err_msg=layers[0])


# --- Interp -------------------------------------------------------------------------------


def test_interp_nearest_x2_repeats_pixels():
    x = _rng().standard_normal((2, 3, 4))
    out = _run(_net("Interp i 1 1 data out 0=1 1=2.0 2=2.0"), x)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(x.astype(np.float32), 2, 1), 2, 2))


def _half_pixel_source(out_size: int, scale: float) -> np.ndarray:
    """Where output pixel o samples the input without align_corner: (o + 0.5) / s - 0.5."""
    return (np.arange(out_size) + 0.5) / scale - 0.5


@pytest.mark.parametrize("scale", [2.0, 0.5, 3.0])
def test_interp_bilinear_reproduces_a_ramp(scale):
    width = 12
    ramp = np.tile(np.arange(width, dtype=np.float32), (1, 4, 1))  # value = column index
    out = _run(_net(f"Interp i 1 1 data out 0=2 1=1.0 2={scale:e}"), ramp)
    expected = np.clip(_half_pixel_source(int(width * scale), scale), 0, width - 1)
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6, atol=1e-6)


def test_interp_bicubic_has_keys_kernel_a_minus_075():
    def keys(t):  # Keys' cubic convolution kernel with A = -0.75
        a, t = -0.75, np.abs(t)
        return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0))

    width, spike = 16, 7
    impulse = np.zeros((1, 4, width), np.float32)  # bicubic needs 4 rows even at scale 1
    impulse[0, :, spike] = 1
    out = _run(_net("Interp i 1 1 data out 0=3 1=1.0 2=2.0"), impulse)
    source = _half_pixel_source(2 * width, 2.0)
    inside = (np.floor(source) >= 1) & (np.floor(source) + 2 <= width - 1)
    np.testing.assert_allclose(out[0, 0][inside], keys(source - spike)[inside], atol=1e-6)
    assert out[0, 0][inside].min() < -0.05  # the kernel's negative lobes are there


def test_interp_output_size_wins_over_scale():
    x = _rng().standard_normal((1, 4, 6))
    out = _run(_net("Interp i 1 1 data out 0=1 1=9.0 2=9.0 3=8 4=12"), x)
    assert out.shape == (1, 8, 12)


# --- loading ------------------------------------------------------------------------------


def test_unsupported_layer_type_is_refused_by_name():
    with pytest.raises(ValueError, match="^unsupported layer type Pooling$"):
        _net("Pooling p 1 1 data out 0=0 1=2 2=2")


def test_bin_must_hold_exactly_the_declared_weights():
    layer = "Convolution c 1 1 data out 0=1 1=1 5=1 6=1"
    with pytest.raises(ValueError, match="too short"):
        _net(layer, weights=_tagged_f32([1.0]))  # no bias
    with pytest.raises(ValueError, match="no layer read"):
        _net(layer, weights=_tagged_f32([1.0]) + _f32([0.0, 0.0]))


def test_quantized_weight_table():
    # a tag other than fp16/fp32/int8: 256 float codebook entries, then one byte per weight
    table = np.arange(256, dtype=np.float32) / 4
    data = struct.pack("<I", 1) + _f32(table) + bytes([8, 4, 0, 0])  # 2 weights, padded
    net = _net("Convolution c 1 1 data out 0=2 1=1 6=2", weights=data)
    out = _run(net, np.ones((1, 1, 1)))
    np.testing.assert_array_equal(out[:, 0, 0], [2.0, 1.0])


def test_int_spelled_floats_are_read_as_floats():
    x = np.linspace(-1, 2, 7).reshape(1, 1, 7)
    out = _run(_net("Clip c 1 1 data out 0=0 1=1"), x)
    np.testing.assert_allclose(out[0, 0], np.clip(x[0, 0], 0, 1))
    with pytest.raises(ValueError, match="spelled as a float"):
        _net("PixelShuffle p 1 1 data out 0=2.0")


# --- the real models on photos ------------------------------------------------------------


def _files(ncnn_files: dict[str, tuple[Path, Path]], stem: str) -> tuple[str, bytes]:
    if stem not in ncnn_files:
        pytest.fail(f"no ncnn model {stem!r} among {sorted(ncnn_files)}")
    param, weights = ncnn_files[stem]
    return param.read_text(), weights.read_bytes()


def _psnr_y(image: np.ndarray, truth: np.ndarray, shave: int) -> float:
    """PSNR on BT.601 luma (16..235) of uint8 RGB images, `shave` px border ignored."""
    def luma(rgb):
        rgb = rgb.astype(np.float64)
        return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255

    inner = (slice(shave, image.shape[0] - shave), slice(shave, image.shape[1] - shave))
    mse = np.mean((luma(image)[inner] - luma(truth)[inner]) ** 2)
    return float(10 * np.log10(255**2 / mse))


PHOTO_CROPS = [(name, spot) for name in ("astronaut.png", "chelsea.png", "coffee.png",
                                          "rocket.jpg") for spot in ((0.3, 0.3), (0.6, 0.5))]


def _gain_over_bicubic(net: NcnnNet, photos: dict[str, Path], scale: int, side: int,
                       margin: int) -> float:
    """Mean PSNR-Y gain of the model over Pillow bicubic, restoring `side` px crops of the
    photos from their bicubic downscale (the LR is edge-padded by `margin` for models that
    read beyond their output)."""
    gains = []
    for name, (fx, fy) in PHOTO_CROPS:
        photo = Image.open(photos[name]).convert("RGB")
        left, top = int(fx * (photo.width - side)), int(fy * (photo.height - side))
        truth = photo.crop((left, top, left + side, top + side))
        small = truth.resize((side // scale, side // scale), Image.BICUBIC)
        bicubic = np.asarray(small.resize((side, side), Image.BICUBIC))
        lr = np.asarray(small, np.float32) / 255
        lr = np.pad(lr, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
        out = net.forward(lr)
        assert out.shape == (side, side, 3)
        restored = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
        truth = np.asarray(truth)
        gains.append(_psnr_y(restored, truth, scale) - _psnr_y(bicubic, truth, scale))
    return float(np.mean(gains))


# Measured (this file's 8 crops): spanx2_ch48 +4.53 dB, spanx4_ch48 +2.42 dB,
# WAIFU2X_PHOTO_UP2X +3.09 dB. For the record, same method: spanx2_ch52 +4.46,
# spanx4_ch52 +2.50, waifu2x photo denoise0..3 +3.15 / +3.19 / +2.96 / +0.90,
# REALESRGAN_ANIMAVIDEOV3_UP2X -1.09 (a GAN model for anime: sharp, not PSNR-optimal).
@pytest.mark.parametrize(("stem", "scale", "side", "margin", "min_gain"), [
    ("spanx2_ch48", 2, 96, 0, 4.0),
    ("spanx4_ch48", 4, 256, 0, 2.0),
    ("WAIFU2X_PHOTO_UP2X", 2, 96, 7, 2.5),
])
def test_real_models_beat_bicubic_on_photos(ncnn_files, photos, stem, scale, side, margin,
                                            min_gain):
    net = NcnnNet.load(*_files(ncnn_files, stem))
    gain = _gain_over_bicubic(net, photos, scale, side, margin)
    assert gain >= min_gain, f"{stem}: {gain:+.2f} dB over bicubic"


# --- blurred photos: realesr-general-x4v3 at x4, and x4 then reduced to x2 ----------------


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur (separable, 3 sigma, mirrored at the edges) of uint8 RGB."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    taps /= taps.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        widths = [(0, 0)] * 3
        widths[axis] = (radius, radius)
        padded = np.pad(out, widths, mode="reflect")
        length = out.shape[axis]
        out = sum(t * np.take(padded, range(i, i + length), axis=axis)
                  for i, t in enumerate(taps))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _blurred_jpeg(truth: Image.Image, factor: int) -> np.ndarray:
    """What a soft phone photo turned thumbnail looks like: `truth` made `factor` times smaller
    (bicubic), blurred (Gaussian sigma 1 on the small image), saved as JPEG at quality 85."""
    import io

    small = truth.resize((truth.width // factor, truth.height // factor), Image.BICUBIC)
    out = io.BytesIO()
    Image.fromarray(_gaussian(np.asarray(small), 1.0)).save(out, "JPEG", quality=85)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))


def _truths(photos: dict[str, Path], largest: int, factor: int):
    """Square crops of the photos (two spots each), the input side at most `largest` and as
    the photo allows at `factor`: as (name, input side, truth)."""
    for name, (fx, fy) in PHOTO_CROPS:
        photo = Image.open(photos[name]).convert("RGB")
        side = min(largest, min(photo.size) // factor) * factor
        left, top = int(fx * (photo.width - side)), int(fy * (photo.height - side))
        yield name, side // factor, photo.crop((left, top, left + side, top + side))


# Pillow's other filters for the x2 mode's halving (reducing_gap 1: a box reduce first).
HALVINGS = {
    "lanczos": {"resample": Image.LANCZOS},
    "bicubic": {"resample": Image.BICUBIC},
    "hamming": {"resample": Image.HAMMING},
    "box": {"resample": Image.BOX},
    "lanczos, reducing_gap 1": {"resample": Image.LANCZOS, "reducing_gap": 1.0},
    "bicubic, reducing_gap 1.5": {"resample": Image.BICUBIC, "reducing_gap": 1.5},
}


# Measured here (8 crops each, inputs 72-96 px): x4 +1.07 dB over bicubic; x4 then reduced to
# x2 (the x2 mode: upscale.stitch.reduce_into, Pillow's bilinear) +1.42 dB, against Pillow's
# lanczos +1.35, bicubic +1.37, hamming +1.39, box +1.37 (with reducing_gap: the same). With
# 150 px inputs added (16 crops): +1.34 against +1.28 / +1.30 / +1.31 / +1.30.
def test_realesr_general_restores_blurred_jpeg_photos_and_its_x2_mode_more(ncnn_by_id, photos,
                                                                          capsys):
    from upscale.stitch import reduce_into

    param, weights = ncnn_by_id["realesr-general-x4v3"]
    net = NcnnNet.load(param.read_text(), weights.read_bytes())

    def run(lr: np.ndarray) -> np.ndarray:
        out = net.forward(lr.astype(np.float32) / 255)
        return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

    def gain(result: np.ndarray, lr: np.ndarray, truth: np.ndarray, factor: int) -> float:
        side = truth.shape[0]
        bicubic = np.asarray(Image.fromarray(lr).resize((side, side), Image.BICUBIC))
        return _psnr_y(result, truth, factor) - _psnr_y(bicubic, truth, factor)

    at_x4 = []
    for _, _, truth in _truths(photos, 96, 4):
        lr = _blurred_jpeg(truth, 4)
        at_x4.append(gain(run(lr), lr, np.asarray(truth), 4))
    at_x2 = {"ours": [], **{name: [] for name in HALVINGS}}
    for _, side, truth in _truths(photos, 96, 2):
        lr = _blurred_jpeg(truth, 2)
        network = run(lr)
        ours = reduce_into(network, np.empty((2 * side, 2 * side, 3), np.uint8), 2)
        at_x2["ours"].append(gain(ours, lr, np.asarray(truth), 2))
        for name, how in HALVINGS.items():
            halved = Image.fromarray(network).resize((2 * side, 2 * side), **how)
            at_x2[name].append(gain(np.asarray(halved), lr, np.asarray(truth), 2))
    x4, x2 = float(np.mean(at_x4)), {k: float(np.mean(v)) for k, v in at_x2.items()}
    with capsys.disabled():
        print(f"\nrealesr-general-x4v3 on blurred JPEG photos, PSNR-Y over bicubic: x4 "
              f"{x4:+.2f} dB ({len(at_x4)} crops); x4 then reduced to x2 ({len(at_x2['ours'])}"
              f" crops): " + ", ".join(f"{k} {v:+.2f}" for k, v in x2.items()))
    assert x4 >= 0.8, x4
    assert x2["ours"] >= x4 + 0.1, x2
    assert x2["ours"] >= max(x2[name] for name in HALVINGS) - 0.01, x2
