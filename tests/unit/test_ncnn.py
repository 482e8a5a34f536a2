"""The ncnn converter in CPython: what it reads, what it refuses, what it infers.

Whether the converted graphs compute what ncnn computes is checked in Chromium against the
independent numpy reference (tests/e2e/test_converted_models.py); here, the parts that need
no TF.js, and the rewrites, with the converted graph run in numpy (tests/graph_numpy.py).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from upscale.errors import BAD_MODEL, UNSUPPORTED_LAYER, InvalidModel, UnsupportedModel
from upscale.ncnn import FP16_TAG, SHARD_BYTES, convert, convert_to_json, parse_param


def param(*lines: str) -> str:
    blobs = sum(len(line.split()) for line in lines)  # the count is not checked; any will do
    return "\n".join(["7767517", f"{len(lines)} {blobs}", *lines]) + "\n"


def conv_weights(out: int, inp: int, k: int, *, half: bool = False, bias: bool = True,
                 seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(out * inp * k * k).astype(np.float32)
    if half:
        data = struct.pack("<I", FP16_TAG) + values.astype("<f2").tobytes()
        data += b"\0" * (-len(data) % 4)
    else:
        data = struct.pack("<I", 0) + values.tobytes()
    if bias:
        data += rng.standard_normal(out).astype(np.float32).tobytes()
    return data


# x2 by a 3x3 conv to 12 channels and a PyTorch-order PixelShuffle.
TINY_X2 = param(
    "Input in 0 1 data",
    "Convolution conv 1 1 data c 0=12 1=3 4=1 5=1 6=324",
    "PixelShuffle ps 1 1 c out 0=2",
)


def test_tiny_model_converts_with_scale_and_no_margin():
    model = convert(TINY_X2, conv_weights(12, 3, 3))
    assert (model.scale, model.margin) == (2, 0)
    ops = [node["op"] for node in model.topology["node"]]
    assert ops.count("Placeholder") == 1 and "_FusedConv2D" in ops and "DepthToSpace" in ops
    assert "GatherV2" not in ops  # the channel order was folded into the conv's filters
    assert ops[-1] == "Identity" and model.topology["node"][-1]["name"] == "output"


def test_pixelshuffle_order_is_folded_into_the_filters():
    """TF channel (i*r + j)*C + c must hold PyTorch channel c*r*r + i*r + j."""
    weights = conv_weights(12, 3, 3)
    model = convert(TINY_X2, weights)
    filters = np.frombuffer(model.weight_data[: 12 * 3 * 9 * 4], np.float32).reshape(3, 3, 3, 12)
    ncnn = np.frombuffer(weights[4 : 4 + 12 * 27 * 4], np.float32).reshape(12, 3, 3, 3)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                tf_channel = (i * 2 + j) * 3 + c
                torch_channel = c * 4 + i * 2 + j
                assert np.array_equal(filters[..., tf_channel],
                                      ncnn[torch_channel].transpose(1, 2, 0))


def test_float16_weights_stay_float16_and_float32_ones_stay_float32():
    half = convert(TINY_X2, conv_weights(12, 3, 3, half=True))
    full = convert(TINY_X2, conv_weights(12, 3, 3))
    quantised = {s["name"] for s in half.weight_specs if "quantization" in s}
    assert quantised == {"conv/filter"}
    assert not any("quantization" in s for s in full.weight_specs)
    assert len(full.weight_data) - len(half.weight_data) == 12 * 27 * 2


def test_waifu2x_like_net_declares_its_margin():
    """Two unpadded 3x3 convs, a 4x4 stride-2 deconvolution cropping 3: out = 2(n - 2 * 3)."""
    text = param(
        "Input in 0 1 data",
        "Convolution c1 1 1 data a 0=4 1=3 5=1 6=108 9=2 -23310=1,0.1",
        "Convolution c2 1 1 a b 0=4 1=3 5=1 6=144 9=2 -23310=1,0.1",
        "Deconvolution d 1 1 b out 0=3 1=4 3=2 4=3 5=1 6=192",
    )
    weights = conv_weights(4, 3, 3) + conv_weights(4, 4, 3) + conv_weights(3, 4, 4)
    model = convert(text, weights)
    assert (model.scale, model.margin) == (2, 3)


def test_unknown_layer_is_refused_by_name():
    text = param("Input in 0 1 data", "Softmax sm 1 1 data out")
    with pytest.raises(UnsupportedModel) as caught:
        convert(text, b"")
    assert str(caught.value) == UNSUPPORTED_LAYER.format(type="Softmax", name="sm")


def test_real_models_convert_with_the_declared_scale_and_margin(ncnn_by_id):
    from sitebuild import models

    manifests = {m["id"]: m for m in models.load_manifests()}
    for model_id, (param_path, bin_path) in ncnn_by_id.items():
        model = convert(param_path.read_text(), bin_path.read_bytes())
        manifest = manifests[model_id]
        declared = (models.network_scale(manifest), manifest["margin"])
        assert (model.scale, model.margin) == declared, model_id


@pytest.mark.parametrize("broken, detail", [
    ("", "a .param file starts with 7767517"),
    ("7767517\n2 2\nInput in 0 1 data\n", "the header announces 2 layers, the file has 1"),
    ("7767517\n1 1\nInput in 0 1 data 0:3\n", "in: '0:3' is not key=value"),
])
def test_malformed_param_files_are_named(broken, detail):
    with pytest.raises(InvalidModel) as caught:
        parse_param(broken)
    assert str(caught.value) == BAD_MODEL.format(detail=detail)


def test_a_short_bin_file_is_invalid():
    with pytest.raises(InvalidModel, match="ends before conv"):
        convert(TINY_X2, conv_weights(12, 3, 3)[:-100])


def test_a_bin_file_of_another_model_is_invalid():
    with pytest.raises(InvalidModel, match="do not belong together"):
        convert(TINY_X2, conv_weights(12, 3, 3) + b"\0" * 64)


def test_a_param_file_that_is_not_text_is_invalid():
    with pytest.raises(InvalidModel, match="not text"):
        convert(b"\xff\xfe\x00binary", b"")


def test_a_model_that_shrinks_is_not_an_upscaler():
    text = param("Input in 0 1 data", "Convolution c 1 1 data out 0=3 1=3 3=2 4=1 5=1 6=81")
    with pytest.raises(UnsupportedModel, match="stride 2 on a side|0.5 times"):
        convert(text, conv_weights(3, 3, 3))


def test_json_for_the_worker_loads_back_with_its_meta():
    text, data, meta = convert_to_json(TINY_X2, conv_weights(12, 3, 3))
    model = json.loads(text)
    assert model["format"] == "graph-model"
    assert meta == {"scale": 2, "margin": 0, "layerTypes": ["Input", "Convolution",
                                                             "PixelShuffle"]}
    specs = model["weightsManifest"][0]["weights"]
    assert sum(4 * int(np.prod(s["shape"])) for s in specs) == len(data)


def test_big_weights_are_cut_into_4_mib_shards():
    text = param("Input in 0 1 data",
                 "Convolution c 1 1 data a 0=512 1=3 4=1 5=1 6=13824",
                 "Convolution c2 1 1 a b 0=12 1=3 4=1 5=1 6=55296",
                 "Convolution c3 1 1 b c 0=1200 1=1 5=1 6=14400",
                 "Convolution c4 1 1 c d 0=1200 1=1 5=1 6=1440000",
                 "Convolution c5 1 1 d e 0=12 1=1 5=1 6=14400",
                 "PixelShuffle ps 1 1 e out 0=2")
    weights = b"".join([conv_weights(512, 3, 3), conv_weights(12, 512, 3),
                        conv_weights(1200, 12, 1), conv_weights(1200, 1200, 1),
                        conv_weights(12, 1200, 1)])
    model = convert(text, weights)
    shards = model.shards()
    assert len(shards) == -(-len(model.weight_data) // SHARD_BYTES) > 1
    assert b"".join(shards.values()) == model.weight_data


# --- the scalar-multiply fold, checked against the numpy reference of the same files --------


def ops_of(model) -> list[str]:
    return [node["op"] for node in model.topology["node"] if node["op"] != "Const"]


def reference_output(text: str, weights: bytes, image: np.ndarray) -> np.ndarray:
    from tests.ncnn_reference import NcnnNet

    return NcnnNet.load(text, weights).forward(image)


def assert_runs_as_the_reference(text: str, weights: bytes, model, image: np.ndarray) -> None:
    """The converted graph, run in numpy, gives the ncnn reference's output (float32 rounding)."""
    from tests.graph_numpy import run_graph

    expected = reference_output(text, weights, image)
    assert np.abs(run_graph(model, image).output - expected).max() < 1e-5 * np.abs(expected).max()


def scalar_bytes(*values: float) -> bytes:
    return np.asarray(values, "<f4").tobytes()


# SPAN's head: subtract a per-channel mean, multiply by 255, a zero-padded 3x3 convolution.
SCALED_HEAD = param(
    "Input in 0 1 data",
    "MemoryData mean 0 1 mean 0=1 1=1 2=3",
    "BinaryOp sub 2 1 data mean centred 0=1",
    "BinaryOp times 1 1 centred scaled 0=2 1=1 2=2.550000e+02",
    "Convolution conv 1 1 scaled c 0=12 1=3 4=1 5=1 6=324",
    "PixelShuffle ps 1 1 c out 0=2",
)
MEAN = scalar_bytes(0.4488, 0.4371, 0.4040)


def test_a_scalar_multiply_read_by_a_conv_goes_into_its_weights_exactly_at_the_border():
    from tests.graph_numpy import run_graph, weights_of

    weights = MEAN + conv_weights(12, 3, 3, half=True)
    model = convert(SCALED_HEAD, weights)
    assert ops_of(model).count("Mul") == 0 and ops_of(model).count("Sub") == 1
    ncnn = np.frombuffer(weights[16 : 16 + 324 * 2], "<f2").astype(np.float32)
    filters = weights_of(model)["conv/filter"]
    assert sorted(filters.ravel()) == sorted(ncnn * 255)
    # x 255 makes float16 weights inexact: they are stored as float32 (no weight loses bits)
    assert not any("quantization" in s for s in model.weight_specs if s["name"] == "conv/filter")
    image = np.random.default_rng(1).random((9, 7, 3)).astype(np.float32)
    expected = reference_output(SCALED_HEAD, weights, image)
    # float32 rounding only, on values up to ~50 (the border rows and columns included)
    assert np.abs(run_graph(model, image).output - expected).max() < 1e-4 * np.abs(expected).max()


def test_float16_weights_stay_float16_when_the_factor_keeps_them_exact():
    text = SCALED_HEAD.replace("2=2.550000e+02", "2=4.0")
    model = convert(text, MEAN + conv_weights(12, 3, 3, half=True))
    assert "Mul" not in ops_of(model)
    assert [s["name"] for s in model.weight_specs if "quantization" in s] == ["conv/filter"]


def test_a_scaled_blob_other_layers_read_is_multiplied_once():
    text = param(
        "Input in 0 1 data",
        "BinaryOp times 1 1 data scaled 0=2 1=1 2=3.0",
        "Split split 1 3 scaled s1 s2 s3",
        "Convolution conv 1 1 s1 c 0=3 1=3 4=1 5=1 6=81",
        "Sigmoid sig 1 1 s2 g",
        "BinaryOp add 2 1 c g cg 0=0",
        "BinaryOp add2 2 1 cg s3 out 0=0",
    )
    weights = conv_weights(3, 3, 3)
    model = convert(text, weights)
    assert ops_of(model).count("Mul") == 1  # for the sigmoid and the add; not for the conv
    image = np.random.default_rng(2).random((6, 6, 3)).astype(np.float32)
    assert_runs_as_the_reference(text, weights, model, image)


def test_a_conv_padding_with_a_value_takes_the_multiplied_blob():
    """Padding with v is not padding s times the input with s * v: the multiply runs."""
    text = param(
        "Input in 0 1 data",
        "BinaryOp times 1 1 data scaled 0=2 1=1 2=3.0",
        "Convolution conv 1 1 scaled c 0=12 1=3 4=1 5=1 6=324 18=1.0",
        "PixelShuffle ps 1 1 c out 0=2",
    )
    weights = conv_weights(12, 3, 3)
    model = convert(text, weights)
    assert ops_of(model).count("Mul") == 1
    image = np.random.default_rng(3).random((5, 5, 3)).astype(np.float32)
    assert_runs_as_the_reference(text, weights, model, image)



# SPAN's attention: (c + x) * (sigmoid(c) - 0.5); `also` reads the sigmoid a second time.
def attention(also: bool) -> str:
    return param(
        "Input in 0 1 data",
        "Split split 1 2 data x1 x2",
        "Convolution conv 1 1 x1 c 0=3 1=3 4=1 5=1 6=81",
        "Split split2 1 2 c c1 c2",
        "Sigmoid sig 1 1 c1 s",
        *(["Split split3 1 2 s s1 s2", "BinaryOp centre 1 1 s1 att 0=1 1=1 2=5.000000e-01"]
          if also else ["BinaryOp centre 1 1 s att 0=1 1=1 2=5.000000e-01"]),
        "BinaryOp add 2 1 c2 x2 sum 0=0",
        *(["BinaryOp mul 2 1 sum att m 0=2", "BinaryOp add2 2 1 m s2 out 0=0"]
          if also else ["BinaryOp mul 2 1 sum att out 0=2"]),
    )


def test_a_sigmoid_less_a_half_is_named_for_half_float_gpus():
    model = convert(attention(False), conv_weights(3, 3, 3))
    assert len(model.centred_sigmoids) == 1
    sigmoid, sub, half = model.centred_sigmoids[0]
    nodes = {node["name"]: node for node in model.topology["node"]}
    assert nodes[sigmoid]["op"] == "Sigmoid" and nodes[half]["op"] == "Const"
    assert nodes[sub]["op"] == "Sub" and nodes[sub]["input"] == [sigmoid, half]
    assert model.model_json([])["userDefinedMetadata"]["centredSigmoids"] == [
        [sigmoid, sub, half]]


def test_a_sigmoid_another_layer_also_reads_is_not_named():
    """Run as tanh, its other reader would get z * 0.5 instead of sigmoid(z)."""
    model = convert(attention(True), conv_weights(3, 3, 3))
    assert model.centred_sigmoids == ()
    assert "centredSigmoids" not in model.model_json([])["userDefinedMetadata"]
