"""A model's footprint (its tensors' size per input pixel) read from both TF.js formats."""

import json
import re
from pathlib import Path

import pytest

from sitebuild import assemble, common
from tests.unit.test_ncnn import TINY_X2, conv_weights, param
from upscale import ncnn
from upscale.footprint import GRAPH_OPS, Footprint, footprint
from upscale.ncnn import convert


def keras(*layers: tuple) -> dict:
    """A Keras functional model's topology: (class, name, config, inbound names) each."""
    return {"model_config": {"class_name": "Functional", "config": {"layers": [
        {"class_name": kind, "name": name, "config": config,
         "inbound_nodes": [[[source, 0, 0, {}] for source in sources]] if sources else []}
        for kind, name, config, sources in layers]}}}


def conv(name: str, filters: int, source: str, kernel: int = 3, stride: int = 1) -> tuple:
    return ("Conv2D", name, {"filters": filters, "kernel_size": [kernel, kernel],
                             "strides": [stride, stride], "padding": "same"}, [source])


RDN_X2 = keras(
    ("InputLayer", "in", {"batch_input_shape": [None, None, None, 3]}, []),
    conv("a", 8, "in"),
    conv("b", 8, "a"),
    ("Concatenate", "cat", {"axis": -1}, ["a", "b"]),
    ("Add", "sum", {}, ["a", "b"]),
    conv("pre", 12, "cat"),
    ("PixelShuffle2x", "shuffle", {"scale": 2}, ["pre"]),
    conv("out", 3, "shuffle"),
)


def test_a_keras_model_is_followed_through_its_merges_and_its_pixel_shuffle():
    # the widest tensor: 16 channels of the concatenation at the input's resolution, and
    # after the shuffle 2² x 3; the widest unrolled input: the last conv, 2² x 9 x 3 = 108
    # against pre's 9 x 16 = 144
    assert footprint(RDN_X2) == Footprint(values=16, unrolled=144)


def test_upsampling_and_strides_change_the_resolution_the_layers_run_at():
    model = keras(
        ("InputLayer", "in", {"batch_input_shape": [None, None, None, 3]}, []),
        conv("a", 4, "in"),
        ("UpSampling2D", "up", {"size": [8, 8]}, ["a"]),
        conv("down", 6, "up", stride=2),
        conv("out", 3, "down", kernel=1),
    )
    # `down` reads 8² x 4 values per input pixel and writes 4² x 6; unrolled at its output
    assert footprint(model) == Footprint(values=256, unrolled=16 * 9 * 4)


def test_layers_listed_in_any_order_and_chains_thousands_deep_are_read():
    layers = RDN_X2["model_config"]["config"]["layers"]
    shuffled = {"model_config": {"config": {"layers": layers[::-1]}}}
    assert footprint(shuffled) == footprint(RDN_X2)
    chain = [("InputLayer", "in", {"batch_input_shape": [None, None, None, 3]}, [])]
    for i in range(3000):
        chain.append(conv(f"c{i}", 4, chain[-1][1]))
    assert footprint(keras(*chain)) == Footprint(values=4, unrolled=36)


@pytest.mark.parametrize("topology", [
    keras(("InputLayer", "in", {"batch_input_shape": [None, None, None, 3]}, []),
          ("Conv2DTranspose", "t", {"filters": 3}, ["in"])),
    keras(conv("a", 4, "b"), conv("b", 4, "a")),
    {"node": [{"name": "in", "op": "Placeholder"}, {"name": "size", "op": "Const"},
              {"name": "r", "op": "ResizeBilinear", "input": ["in", "size"]}]},
    {"model_config": {"config": {}}},
    {},
], ids=["unknown layer", "cycle", "unknown op", "no layers", "empty"])
def test_what_it_cannot_follow_has_no_footprint(topology):
    assert footprint(topology) is None


def test_a_converted_ncnn_graph_is_followed_through_its_depth_to_space():
    model = convert(TINY_X2, conv_weights(12, 3, 3))
    # 12 channels at the input's resolution, 3 at twice it; a 3x3 conv over 3 channels
    assert footprint(model.model_json([])["modelTopology"]) == Footprint(values=12, unrolled=27)


def test_every_catalogue_model_has_a_footprint():
    """So every model the page offers gets its GPU patch from the device's limits before its
    warm-up. slim x8 is the one checked by hand: it upsamples 192 channels 8x, then a 3x3
    conv reads them (8² x 9 x 192 per input pixel)."""
    if not (common.DIST / "index.html").exists():
        pytest.fail("dist/ is not built; run `python build.py test`")
    prints = {}
    for entry in assemble.built_catalogue():
        folder = (common.DIST / entry["url"].lstrip("/")).parent
        prints[entry["id"]] = footprint(json.loads((folder / "model.json").read_text())
                                        ["modelTopology"])
    assert None not in prints.values(), [name for name, fp in prints.items() if fp is None]
    assert prints["esrgan-slim-x8"] == Footprint(values=8**2 * 192, unrolled=8**2 * 9 * 192)


def test_every_op_the_converter_writes_is_one_the_footprint_follows():
    """A model brought by a user (any ncnn pair the converter takes) gets its GPU tile up
    front too: the ops named in upscale/ncnn.py are all known here."""
    source = Path(ncnn.__file__).read_text()
    written = set(re.findall(r'(?:node|_binary)\(\s*"(\w+)"', source))
    written |= set(ncnn._Converter.BINARY_OPS.values()) | {"_FusedConv2D",
                                                          "FusedDepthwiseConv2dNative"}
    assert {"Split", "GatherV2", "MirrorPad", "Pow"} <= written  # the scan sees them
    assert written <= GRAPH_OPS, written - GRAPH_OPS


def test_a_grouped_convolution_is_followed_through_its_split():
    model = convert(param(
        "Input in 0 1 data",
        "Convolution c0 1 1 data a 0=12 1=3 4=1 5=1 6=324",
        "ConvolutionDepthWise g 1 1 a b 0=12 1=3 4=1 5=1 6=648 7=2",
        "PixelShuffle ps 1 1 b out 0=2",
    ), conv_weights(12, 3, 3) + conv_weights(12, 6, 3, seed=1))
    # each group's conv reads 6 of the 12 channels, 3x3: 54 values per pixel unrolled
    assert footprint(model.model_json([])["modelTopology"]) == Footprint(values=12, unrolled=54)
