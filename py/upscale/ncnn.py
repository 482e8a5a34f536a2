"""ncnn super-resolution models (.param text + .bin weights) as TensorFlow.js graph models.

`convert(param, weights)` reads an ncnn pair and returns a graph model (the JSON TF.js's own
`loadGraphModel` reads, plus the weight bytes) that runs on every TF.js backend, with the
upscale factor and the input margin the network reads beyond its output inferred from the
graph. Pure numpy: it runs in CPython at build time and in Pyodide when a user brings a model.

Layout: ncnn blobs are (C, H, W); TF.js runs NHWC. Weights are reordered here once, so no
transpose runs per tile. Layers are mapped to plain TF ops; anything else is refused by name
(UnsupportedModel) rather than run wrongly. Two mappings are not one-to-one:
- Deconvolution becomes a sub-pixel convolution (one Conv2D over `stride`² phases, then
  DepthToSpace, then a crop): no op needs the output shape, so any tile size runs.
- Interp by a rational factor p/q becomes a polyphase convolution (stride q, p² phases, then
  DepthToSpace) over an edge-replicated border, which is what ncnn's bilinear and (for
  downscaling) bicubic do at the image edge; nearest by an integer factor is a DepthToSpace
  of repeated channels.

One rewrite keeps large values out of the graph: a multiplication by a constant is not run
where convolutions read its result; they take the factor into their weights instead (exact,
zero padding included: s * 0 = 0). SPAN subtracts a mean from its [0, 1] input and multiplies
by 255; the 255 goes into the first convolution, the subtraction stays as it is, because a
mean folded into the bias would be wrong at the image border, where that convolution pads
(x - mean) * 255 with zeros, not x.

One more is left to the GPU that needs it: sigmoid(z) - 0.5, where nothing else reads the
sigmoid, is named in the model's metadata (`centredSigmoids`), and TF.js on half-float WebGL
runs it as tanh(z / 2) / 2 (web/tfbridge.js). The values are the same; in float16 sigmoid(z)
is rounded to 2^-12 near 0.5 before 0.5 goes, tanh(z / 2) to its own size. SPAN's attention is
such a difference, and its six blocks multiply that rounding on hard edges (span-x4 on black
and white bars: 41 dB of float32, 50 dB as tanh). Elsewhere the sigmoid stays: WASM's tanh
costs SPAN 15-20 %.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .errors import (
    BAD_MODEL,
    NOT_AN_UPSCALER,
    UNSUPPORTED_LAYER,
    UNSUPPORTED_PARAM,
    InvalidModel,
    UnsupportedModel,
)

MAGIC = 7767517
FP16_TAG = 0x01306B47
SHARD_BYTES = 4 << 20  # TF.js's own converter splits weights into 4 MiB files
ARRAY_KEY = -23300  # a param key k <= -23300 holds an array for key -(k + 23300)

LAYER_TYPES = (
    "Input", "Convolution", "ConvolutionDepthWise", "Deconvolution", "ReLU", "PReLU",
    "Sigmoid", "Swish", "Clip", "BinaryOp", "Eltwise", "Concat", "Split", "PixelShuffle",
    "Interp", "MemoryData", "Crop", "Padding", "Noop", "Dropout",
)


# --- reading .param and .bin -------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One line of a .param file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, object]

    def get(self, key: int, default: object = 0) -> object:
        return self.params.get(key, default)

    def int(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if isinstance(value, tuple) or value != int(value):
            raise InvalidModel(BAD_MODEL.format(detail=f"{self.name}: param {key} must be whole"))
        return int(value)

    def float(self, key: int, default: float = 0.0) -> float:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise InvalidModel(BAD_MODEL.format(detail=f"{self.name}: param {key} is an array"))
        return float(value)

    def array(self, key: int) -> tuple:
        value = self.params.get(key, ())
        return value if isinstance(value, tuple) else (value,)


def _number(text: str) -> int | float:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise InvalidModel(BAD_MODEL.format(detail=f"{text!r} is not a number")) from None


def parse_param(text: str) -> list[Layer]:
    """The layers of an ncnn .param file, in order."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise InvalidModel(BAD_MODEL.format(detail=f"a .param file starts with {MAGIC}"))
    if len(lines) < 2 or len(lines[1]) != 2:
        raise InvalidModel(BAD_MODEL.format(detail="line 2 must hold the layer and blob counts"))
    count = _number(lines[1][0])
    body = lines[2:]
    if count != len(body):
        raise InvalidModel(BAD_MODEL.format(
            detail=f"the header announces {count} layers, the file has {len(body)}"))
    layers = []
    for fields in body:
        if len(fields) < 4:
            raise InvalidModel(BAD_MODEL.format(detail=f"short layer line {' '.join(fields)!r}"))
        kind, name = fields[0], fields[1]
        n_in, n_out = _number(fields[2]), _number(fields[3])
        if not isinstance(n_in, int) or not isinstance(n_out, int) or n_in < 0 or n_out < 0 \
                or len(fields) < 4 + n_in + n_out:
            raise InvalidModel(BAD_MODEL.format(detail=f"{name}: bad blob counts"))
        blobs = fields[4 : 4 + n_in + n_out]
        params: dict[int, object] = {}
        for item in fields[4 + n_in + n_out :]:
            key_text, sep, value = item.partition("=")
            if not sep:
                raise InvalidModel(BAD_MODEL.format(detail=f"{name}: {item!r} is not key=value"))
            key = _number(key_text)
            if not isinstance(key, int):
                raise InvalidModel(BAD_MODEL.format(detail=f"{name}: bad key {key_text!r}"))
            if key <= ARRAY_KEY:
                values = [_number(v) for v in value.split(",")]
                if values[0] != len(values) - 1:
                    raise InvalidModel(BAD_MODEL.format(detail=f"{name}: array {key} length"))
                params[-(key - ARRAY_KEY)] = tuple(values[1:])
            else:
                params[key] = _number(value)
        layers.append(Layer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    return layers


class WeightReader:
    """The .bin file, read front to back in layer order."""

    def __init__(self, data: bytes | memoryview):
        self.data = memoryview(data).cast("B")
        self.offset = 0

    def _take(self, size: int, what: str) -> memoryview:
        if self.offset + size > len(self.data):
            raise InvalidModel(BAD_MODEL.format(
                detail=f"the .bin file ends before {what} (it has {len(self.data)} bytes)"))
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def raw(self, count: int, what: str) -> np.ndarray:
        """`count` float32 values with no tag (biases, slopes, constants)."""
        return np.frombuffer(self._take(4 * count, what), "<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> tuple[np.ndarray, bool]:
        """`count` weights behind a 4-byte tag; (values as float32, stored as float16)."""
        tag = int.from_bytes(self._take(4, what), "little")
        if tag == FP16_TAG:
            values = np.frombuffer(self._take(2 * count, what), "<f2").astype(np.float32)
            self._take((-2 * count) % 4, what)  # float16 data is padded to 4 bytes
            return values, True
        if tag == 0:
            return self.raw(count, what), False
        raise UnsupportedModel(UNSUPPORTED_PARAM.format(
            layer=what, detail=f"quantised weights (tag 0x{tag:08x}); only float32 and float16"))

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise InvalidModel(BAD_MODEL.format(
                detail=f"the .bin file has {len(self.data) - self.offset} bytes more than the "
                       f".param file's layers use: the two files do not belong together"))


# --- spatial sizes: every blob's side is an affine function of the input side -------------


@dataclass(frozen=True)
class Side:
    """A blob's height or width as `a * n + b` for an input side n (height and width are
    checked to change alike, so one Side describes both)."""

    a: Fraction
    b: Fraction

    def then(self, a: Fraction | int, b: Fraction | int = 0) -> Side:
        return Side(self.a * a, self.b * a + b)


INPUT_SIDE = Side(Fraction(1), Fraction(0))


@dataclass
class Blob:
    ref: str  # the TF node output that holds it ("name" or "name:i")
    channels: int
    side: Side | None  # None: a constant that broadcasts (MemoryData)
    # The blob is `ref` times `factor`: a BinaryOp (named `deferred`) not yet run, which a
    # convolution reading the blob takes into its weights, and anything else runs first.
    factor: float = 1.0
    deferred: str = ""


# --- the TF.js graph being written -------------------------------------------------------


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(values) -> dict:
    return {"list": {"i": [str(int(v)) for v in values]}}


DT = {"float32": "DT_FLOAT", "int32": "DT_INT32"}


@dataclass
class Graph:
    nodes: list[dict] = field(default_factory=list)
    weights: list[tuple[str, np.ndarray, bool]] = field(default_factory=list)  # name, value, f16
    names: set[str] = field(default_factory=set)

    def unique(self, base: str) -> str:
        name = "".join(c if c.isalnum() or c in "_./-" else "_" for c in base) or "node"
        name, n = name.lstrip("/") or "node", 1
        candidate = name
        while candidate in self.names:
            n += 1
            candidate = f"{name}_{n}"
        self.names.add(candidate)
        return candidate

    def node(self, op: str, name: str, inputs: list[str], attr: dict | None = None) -> str:
        name = self.unique(name)
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr or {}})
        return name

    def const(self, name: str, value: np.ndarray, half: bool = False) -> str:
        dtype = "int32" if value.dtype.kind in "iu" else "float32"
        value = np.ascontiguousarray(value, dtype)
        name = self.unique(name)
        self.nodes.append({"name": name, "op": "Const", "attr": {
            "value": {"tensor": {"dtype": DT[dtype], "tensorShape": {
                "dim": [{"size": str(d)} for d in value.shape]}}},
            "dtype": {"type": DT[dtype]}}})
        self.weights.append((name, value, half and dtype == "float32"))
        return name

    def find(self, name: str) -> dict:
        return next(n for n in self.nodes if n["name"] == name)


def _conv_attr(stride: tuple[int, int], dilation: tuple[int, int], padding: str) -> dict:
    return {"T": {"type": "DT_FLOAT"}, "strides": _ints([1, *stride, 1]),
            "dilations": _ints([1, *dilation, 1]), "padding": _s(padding),
            "data_format": _s("NHWC")}


# --- the conversion ----------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """A TF.js graph model: `model_json` minus the shard paths, and its weight bytes."""

    topology: dict
    weight_specs: list[dict]
    weight_data: bytes
    scale: int
    margin: int  # input pixels the network reads beyond its output on each side
    layer_types: tuple[str, ...]
    # (Sigmoid node, Sub node, its 0.5): sigmoid(z) - 0.5 where nothing else reads the sigmoid
    centred_sigmoids: tuple[tuple[str, str, str], ...] = ()

    def model_json(self, shard_paths: list[str]) -> dict:
        metadata = {"scale": self.scale, "margin": self.margin}
        if self.centred_sigmoids:
            metadata["centredSigmoids"] = [list(c) for c in self.centred_sigmoids]
        return {
            "format": "graph-model",
            "generatedBy": "ncnn",
            "convertedBy": "upscale.ncnn",
            "modelTopology": self.topology,
            "weightsManifest": [{"paths": shard_paths, "weights": self.weight_specs}],
            "userDefinedMetadata": metadata,
        }

    def shards(self, stem: str = "group1") -> dict[str, bytes]:
        """The weight bytes cut into TF.js's usual 4 MiB files, by file name."""
        data = self.weight_data
        count = max(1, math.ceil(len(data) / SHARD_BYTES))
        return {f"{stem}-shard{i + 1}of{count}.bin": data[i * SHARD_BYTES : (i + 1) * SHARD_BYTES]
                for i in range(count)}


class _Converter:
    def __init__(self, layers: list[Layer], weights: WeightReader):
        self.layers = layers
        self.weights = weights
        self.graph = Graph()
        self.blobs: dict[str, Blob] = {}
        self.consumers: dict[str, int] = {}
        for layer in layers:
            for blob in layer.inputs:
                self.consumers[blob] = self.consumers.get(blob, 0) + 1
        # Conv nodes whose activation slot is still free, by the blob they produce.
        self.fusable: dict[str, dict] = {}
        self.produced_by_conv: dict[str, dict] = {}  # blob: the plain conv node making it
        self.applied: dict[tuple[str, float], str] = {}  # a deferred factor, once it ran
        # Sigmoid nodes of their own (not fused into a conv): the blob each makes
        self.sigmoids: dict[str, str] = {}
        self.centred: list[tuple[str, str, str]] = []  # Converted.centred_sigmoids

    # helpers

    def raw_input(self, layer: Layer, index: int = 0) -> Blob:
        """The blob as it is, a deferred factor included (for a layer that can take it)."""
        try:
            return self.blobs[layer.inputs[index]]
        except (KeyError, IndexError):
            raise InvalidModel(BAD_MODEL.format(
                detail=f"{layer.name} reads a blob no earlier layer makes")) from None

    def input(self, layer: Layer, index: int = 0) -> Blob:
        return self.applied_factor(self.raw_input(layer, index))

    def applied_factor(self, blob: Blob) -> Blob:
        """`blob` with its deferred factor run (once, however many layers read it)."""
        if blob.factor == 1:
            return blob
        key = (blob.ref, blob.factor)
        if key not in self.applied:
            self.applied[key] = self._binary("Mul", blob.deferred, blob.ref, self.scalar(
                blob.deferred + "/b", blob.factor))
        return Blob(self.applied[key], blob.channels, blob.side)

    def output(self, layer: Layer, ref: str, channels: int, side: Side | None,
               index: int = 0, factor: float = 1.0, deferred: str = "") -> None:
        self.blobs[layer.outputs[index]] = Blob(ref, channels, side, factor, deferred)

    def scalar(self, name: str, value: float) -> str:
        return self.graph.const(name, np.array(value, np.float32))

    def refuse(self, layer: Layer, detail: str) -> UnsupportedModel:
        return UnsupportedModel(UNSUPPORTED_PARAM.format(layer=f"{layer.type} {layer.name}",
                                                         detail=detail))

    def same_side(self, layer: Layer, sides: list[Side | None]) -> Side | None:
        real = [s for s in sides if s is not None]
        if any(s != real[0] for s in real):
            raise InvalidModel(BAD_MODEL.format(detail=f"{layer.name} joins blobs of different "
                                                        "sizes"))
        return real[0] if real else None

    # driver

    def run(self) -> Converted:
        for layer in self.layers:
            if layer.type not in LAYER_TYPES:
                raise UnsupportedModel(UNSUPPORTED_LAYER.format(type=layer.type, name=layer.name))
        for layer in self.layers:
            getattr(self, "layer_" + layer.type)(layer)
        self.weights.finish()
        consumed = {b for layer in self.layers for b in layer.inputs}
        ends = [b for layer in self.layers if layer.type != "Split" for b in layer.outputs
                if b not in consumed]
        if len(ends) != 1:
            raise InvalidModel(BAD_MODEL.format(
                detail=f"an upscaler has one output; this model has {len(ends)}"))
        out = self.applied_factor(self.blobs[ends[0]])
        if out.side is None or out.channels != 3:
            raise InvalidModel(NOT_AN_UPSCALER.format(detail=f"its output has {out.channels} "
                                                             "channels, not 3 (RGB)"))
        self.graph.node("Identity", "output", [out.ref], {"T": {"type": "DT_FLOAT"}})
        scale, margin = _scale_and_margin(out.side)
        return self._pack(scale, margin)

    def _pack(self, scale: int, margin: int) -> Converted:
        specs, chunks = [], []
        for name, value, half in self.graph.weights:
            spec = {"name": name, "shape": list(value.shape), "dtype": str(value.dtype)}
            if half:
                spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
                chunks.append(value.astype("<f2").tobytes())
            else:
                chunks.append(value.astype(value.dtype.newbyteorder("<")).tobytes())
            specs.append(spec)
        topology = {"node": self.graph.nodes, "library": {},
                    "versions": {"producer": 1, "minConsumer": 0}}
        types = tuple(dict.fromkeys(layer.type for layer in self.layers))
        return Converted(topology, specs, b"".join(chunks), scale, margin, types,
                         tuple(self.centred))

    # layers

    def layer_Input(self, layer: Layer) -> None:
        channels = layer.int(2, 3) or 3
        if channels != 3:
            raise UnsupportedModel(NOT_AN_UPSCALER.format(
                detail=f"its input has {channels} channels, not 3 (RGB)"))
        ref = self.graph.node("Placeholder", "input", [], {
            "dtype": {"type": "DT_FLOAT"},
            "shape": {"shape": {"dim": [{"size": "-1"}, {"size": "-1"}, {"size": "-1"},
                                        {"size": "3"}]}}})
        self.output(layer, ref, 3, INPUT_SIDE)

    def layer_Noop(self, layer: Layer) -> None:
        for i, blob in enumerate(layer.outputs):
            self.blobs[blob] = self.input(layer, min(i, len(layer.inputs) - 1))

    layer_Dropout = layer_Noop  # inference: the identity (ncnn's scale param is 1 for SR)

    def layer_Split(self, layer: Layer) -> None:
        source = self.raw_input(layer)  # a deferred factor goes on to every reader
        for blob in layer.outputs:
            self.blobs[blob] = source

    def _conv_geometry(self, layer: Layer) -> dict:
        kw = layer.int(1)
        kh = layer.int(11, kw)
        dw = layer.int(2, 1)
        dh = layer.int(12, dw)
        sw = layer.int(3, 1)
        sh = layer.int(13, sw)
        pl = layer.int(4, 0)
        pt = layer.int(14, pl)
        pr = layer.int(15, pl)
        pb = layer.int(16, pt)
        if layer.int(8, 0):
            raise self.refuse(layer, "int8 quantised weights")
        if layer.int(19, 0):
            raise self.refuse(layer, "weights given at run time (dynamic_weight)")
        return {"kw": kw, "kh": kh, "dw": dw, "dh": dh, "sw": sw, "sh": sh,
                "pads": (pt, pb, pl, pr), "pad_value": layer.float(18, 0.0)}

    def _pad(self, x: str, name: str, pads: tuple[int, int, int, int], value: float = 0.0) -> str:
        pt, pb, pl, pr = pads
        paddings = self.graph.const(name + "/paddings",
                                    np.array([[0, 0], [pt, pb], [pl, pr], [0, 0]], np.int32))
        return self.graph.node("Pad", name + "/pad", [x, paddings],
                               {"T": {"type": "DT_FLOAT"}, "constant_value": {"f": value}})

    def _replicate(self, x: str, name: str, pads: tuple[int, int, int, int]) -> str:
        """Pad by repeating the edge rows and columns (ncnn's border for resizing)."""
        pt, pb, pl, pr = pads
        for axis, before, after in ((1, pt, pb), (2, pl, pr)):
            if not before and not after:
                continue
            parts = []
            if before:
                parts += [self._edge(x, name, axis, first=True)] * before
            parts.append(x)
            if after:
                parts += [self._edge(x, name, axis, first=False)] * after
            x = self._concat(parts, name + f"/replicate{axis}", axis)
        return x

    def _edge(self, x: str, name: str, axis: int, first: bool) -> str:
        begin = [0, 0, 0, 0]
        end = [0, 0, 0, 0]
        begin[axis], end[axis] = (0, 1) if first else (-1, 0)
        mask = 0b1111 & ~(1 << axis)
        end_mask = mask | (0 if first else 1 << axis)
        return self._strided_slice(x, name + "/edge", begin, end, mask, end_mask)

    def _strided_slice(self, x: str, name: str, begin, end, begin_mask: int,
                       end_mask: int) -> str:
        g = self.graph
        return g.node("StridedSlice", name, [
            x, g.const(name + "/begin", np.array(begin, np.int32)),
            g.const(name + "/end", np.array(end, np.int32)),
            g.const(name + "/strides", np.ones(4, np.int32))], {
            "T": {"type": "DT_FLOAT"}, "Index": {"type": "DT_INT32"},
            "begin_mask": {"i": str(begin_mask)}, "end_mask": {"i": str(end_mask)},
            "ellipsis_mask": {"i": "0"}, "new_axis_mask": {"i": "0"},
            "shrink_axis_mask": {"i": "0"}})

    def _concat(self, refs: list[str], name: str, axis: int) -> str:
        if len(refs) == 1:
            return refs[0]
        axis_ref = self.graph.const(name + "/axis", np.array(axis, np.int32))
        return self.graph.node("ConcatV2", name, [*refs, axis_ref],
                               {"T": {"type": "DT_FLOAT"}, "N": {"i": str(len(refs))},
                                "Tidx": {"type": "DT_INT32"}})

    def _fused_conv(self, layer: Layer, x: str, filt: np.ndarray, bias: np.ndarray, half: bool,
                    stride: tuple[int, int], dilation: tuple[int, int], padding: str,
                    depthwise: bool = False) -> dict:
        g = self.graph
        w_ref = g.const(layer.name + "/filter", filt, half)
        b_ref = g.const(layer.name + "/bias", bias)
        op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
        name = g.node(op, layer.name, [x, w_ref, b_ref], {
            **_conv_attr(stride, dilation, padding), "num_args": {"i": "1"},
            "fused_ops": {"list": {"s": [_s("BiasAdd")["s"]]}}, "epsilon": {"f": 0.0}})
        node = g.find(name)
        node["_filter"], node["_bias"] = w_ref, b_ref
        return node

    def _activate(self, layer: Layer, node: dict, blob: str) -> str:
        """Apply the conv's own activation (param 9); returns the output ref."""
        kind = layer.int(9, 0)
        args = layer.array(10)
        if kind == 0:
            if self.consumers.get(blob, 0) == 1:
                self.fusable[blob] = node
            return node["name"]
        if kind in (1, 2, 4):
            slope = float(args[0]) if kind == 2 and args else 0.0
            self._fuse(node, {1: "Relu", 2: "LeakyRelu", 4: "Sigmoid"}[kind], slope)
            return node["name"]
        return self._activation_op(layer, node["name"], kind, args)

    def _fuse(self, node: dict, activation: str, alpha: float = 0.0,
              prelu: str | None = None) -> None:
        node["attr"]["fused_ops"] = {"list": {"s": [_s("BiasAdd")["s"], _s(activation)["s"]]}}
        if activation == "LeakyRelu":
            node["attr"]["leakyrelu_alpha"] = {"f": alpha}
        if prelu is not None:
            node["input"].append(prelu)
            node["attr"]["num_args"] = {"i": "2"}

    def _activation_op(self, layer: Layer, x: str, kind: int, args: tuple) -> str:
        g, name = self.graph, layer.name
        if kind == 1:
            return g.node("Relu", name + "/relu", [x], {"T": {"type": "DT_FLOAT"}})
        if kind == 2:
            return g.node("LeakyRelu", name + "/leaky", [x], {"alpha": {"f": float(args[0])}})
        if kind == 3:
            low, high = (float(args[0]), float(args[1])) if len(args) >= 2 else (-3e38, 3e38)
            return self._clip(x, name, low, high)
        if kind == 4:
            return g.node("Sigmoid", name + "/sigmoid", [x], {"T": {"type": "DT_FLOAT"}})
        if kind == 5:  # mish: x * tanh(softplus(x))
            soft = g.node("Softplus", name + "/softplus", [x], {"T": {"type": "DT_FLOAT"}})
            tanh = g.node("Tanh", name + "/tanh", [soft], {"T": {"type": "DT_FLOAT"}})
            return self._binary("Mul", name + "/mish", x, tanh)
        if kind == 6:  # hardswish: x * clip(alpha * x + beta, 0, 1)
            alpha, beta = (float(args[0]), float(args[1])) if len(args) >= 2 else (0.2, 0.5)
            lin = self._binary("AddV2", name + "/hs_add", self._binary(
                "Mul", name + "/hs_mul", x, self.scalar(name + "/alpha", alpha)),
                self.scalar(name + "/beta", beta))
            return self._binary("Mul", name + "/hardswish", x, self._clip(lin, name, 0.0, 1.0))
        raise self.refuse(layer, f"activation type {kind}")

    def _clip(self, x: str, name: str, low: float, high: float) -> str:
        return self.graph.node("ClipByValue", name + "/clip", [
            x, self.scalar(name + "/min", low), self.scalar(name + "/max", high)],
            {"T": {"type": "DT_FLOAT"}})

    def _binary(self, op: str, name: str, a: str, b: str) -> str:
        return self.graph.node(op, name, [a, b], {"T": {"type": "DT_FLOAT"}})

    def _conv_input(self, layer: Layer, x: Blob, geo: dict) -> tuple[str, str, Side]:
        """Pad as ncnn would; returns (input ref, TF padding, output side)."""
        kh, kw, dh, dw, sh, sw = (geo[k] for k in ("kh", "kw", "dh", "dw", "sh", "sw"))
        ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        pt, pb, pl, pr = geo["pads"]
        if pl in (-233, -234) or pt in (-233, -234):
            if (sh, sw) != (1, 1) or (ext_h % 2 == 0 or ext_w % 2 == 0) and pl == -234:
                raise self.refuse(layer, "SAME padding with a stride or an even kernel")
            pt, pb = (ext_h - 1) // 2, ext_h - 1 - (ext_h - 1) // 2
            pl, pr = (ext_w - 1) // 2, ext_w - 1 - (ext_w - 1) // 2
        if min(pt, pb, pl, pr) < 0:
            raise self.refuse(layer, f"padding {geo['pads']}")
        if pt + pb - ext_h != pl + pr - ext_w:
            raise self.refuse(layer, "a kernel and padding that shrink height and width unequally")
        if sh != sw:
            raise self.refuse(layer, f"unequal strides {sh}x{sw}")
        base = x.side.then(1, pt + pb - ext_h)  # out = (n + pads - extent) / stride + 1
        if base.a % sh or base.b % sh:
            raise self.refuse(layer, f"stride {sh} on a side that does not divide by it")
        side = Side(base.a / sh, base.b / sh + 1)
        ref = x.ref
        if (pt, pb, pl, pr) == (0, 0, 0, 0):
            return ref, "VALID", side
        symmetric = pt == pb and pl == pr
        if symmetric and sh == 1 and 2 * pt == ext_h - 1 and 2 * pl == ext_w - 1 \
                and geo["pad_value"] == 0:
            return ref, "SAME", side
        return self._pad(ref, layer.name, (pt, pb, pl, pr), geo["pad_value"]), "VALID", side

    def layer_Convolution(self, layer: Layer) -> None:
        self._convolution(layer, groups=1)

    def layer_ConvolutionDepthWise(self, layer: Layer) -> None:
        self._convolution(layer, groups=layer.int(7, 1))

    def _convolution(self, layer: Layer, groups: int) -> None:
        geo = self._conv_geometry(layer)
        x = self.raw_input(layer)
        factor = x.factor
        if geo["pad_value"] != 0:  # the border would need the pad value divided by the factor
            x, factor = self.applied_factor(x), 1.0
        if x.side is None:
            raise self.refuse(layer, "a convolution of a constant")
        out_ch, kh, kw = layer.int(0), geo["kh"], geo["kw"]
        size = layer.int(6)
        if groups < 1 or x.channels % groups or out_ch % groups or out_ch <= 0 or kh <= 0:
            raise InvalidModel(BAD_MODEL.format(detail=f"{layer.name}: groups {groups} do not "
                                                       f"divide {x.channels}->{out_ch}"))
        in_per = x.channels // groups
        if size != out_ch * in_per * kh * kw:
            raise InvalidModel(BAD_MODEL.format(
                detail=f"{layer.name}: {size} weights do not fit {out_ch}x{in_per}x{kh}x{kw} "
                       f"(input has {x.channels} channels)"))
        weights, half = self.weights.tagged(size, layer.name)
        bias = (self.weights.raw(out_ch, layer.name) if layer.int(5, 0)
                else np.zeros(out_ch, np.float32))
        if factor != 1:
            weights = weights * np.float32(factor)
            # float16 weights stay float16 only where scaling kept them exact (x 255 does not)
            half = half and np.array_equal(weights.astype(np.float16).astype(np.float32),
                                           weights)
        ref, padding, side = self._conv_input(layer, x, geo)
        stride, dilation = (geo["sh"], geo["sw"]), (geo["dh"], geo["dw"])
        w = weights.reshape(groups, out_ch // groups, in_per, kh, kw)
        if groups == 1:
            node = self._fused_conv(layer, ref, w[0].transpose(2, 3, 1, 0), bias, half,
                                    stride, dilation, padding)
            out = self._activate(layer, node, layer.outputs[0])
            self.produced_by_conv[layer.outputs[0]] = node
        elif in_per == 1 and groups == x.channels:
            # Depthwise with a channel multiplier m: TF's output channel c*m + j is ncnn's.
            filt = w[:, :, 0].transpose(2, 3, 0, 1)  # (kh, kw, C, m)
            node = self._fused_conv(layer, ref, filt, bias, half, stride, dilation, padding,
                                    depthwise=True)
            kind = layer.int(9, 0)
            out = node["name"] if kind == 0 else self._activation_op(
                layer, node["name"], kind, layer.array(10))
        else:
            split_axis = self.graph.const(layer.name + "/split_axis", np.array(3, np.int32))
            split = self.graph.node("Split", layer.name + "/split", [split_axis, ref],
                                    {"T": {"type": "DT_FLOAT"}, "num_split": {"i": str(groups)}})
            parts = []
            per_out = out_ch // groups
            for gi in range(groups):
                part = Layer(layer.type, f"{layer.name}/g{gi}", (), (), {})
                node = self._fused_conv(part, f"{split}:{gi}", w[gi].transpose(2, 3, 1, 0),
                                        bias[gi * per_out : (gi + 1) * per_out], half, stride,
                                        dilation, padding)
                parts.append(node["name"])
            out = self._concat(parts, layer.name + "/concat", 3)
            kind = layer.int(9, 0)
            if kind:
                out = self._activation_op(layer, out, kind, layer.array(10))
        self.output(layer, out, out_ch, side)

    def layer_Deconvolution(self, layer: Layer) -> None:
        x = self.input(layer)
        geo = self._conv_geometry(layer)
        out_ch, kh, kw, s = layer.int(0), geo["kh"], geo["kw"], geo["sh"]
        if geo["sw"] != s or (geo["dh"], geo["dw"]) != (1, 1):
            raise self.refuse(layer, "unequal strides or dilation")
        if layer.int(20, 0) or layer.int(21, 0):
            raise self.refuse(layer, "a fixed output size")
        pt, pb, pl, pr = geo["pads"]
        if min(pt, pb, pl, pr) < 0:
            raise self.refuse(layer, f"padding {geo['pads']}")
        opr = layer.int(18, 0)
        opb = layer.int(19, opr)
        size = layer.int(6)
        if x.side is None or size != out_ch * x.channels * kh * kw:
            raise InvalidModel(BAD_MODEL.format(
                detail=f"{layer.name}: {size} weights do not fit {out_ch}x{x.channels}x{kh}x{kw}"))
        weights, half = self.weights.tagged(size, layer.name)
        bias = (self.weights.raw(out_ch, layer.name) if layer.int(5, 0)
                else np.zeros(out_ch, np.float32))
        # ncnn scatters in[j] * w[k] to out[j*s + k] (weights out, in, kh, kw). Phase r of the
        # output (out[s*a + r]) gathers in[a - t] * w[r + s*t]: a correlation with T taps.
        w = weights.reshape(out_ch, x.channels, kh, kw)
        th, tw = -(-kh // s), -(-kw // s)
        filt = np.zeros((th, tw, x.channels, s * s * out_ch), np.float32)
        for ry in range(s):
            for rx in range(s):
                for uy in range(th):
                    ky = ry + s * (th - 1 - uy)
                    if ky >= kh:
                        continue
                    for ux in range(tw):
                        kx = rx + s * (tw - 1 - ux)
                        if kx >= kw:
                            continue
                        phase = (ry * s + rx) * out_ch
                        filt[uy, ux, :, phase : phase + out_ch] = w[:, :, ky, kx].T
        padded = self._pad(x.ref, layer.name, (th - 1, th - 1, tw - 1, tw - 1))
        node = self._fused_conv(layer, padded, filt, np.tile(bias, s * s), half, (1, 1), (1, 1),
                                "VALID")
        ref = self._activate(layer, node, "")  # the crop follows: never fused from outside
        if s > 1:
            ref = self.graph.node("DepthToSpace", layer.name + "/shuffle", [ref], {
                "T": {"type": "DT_FLOAT"}, "block_size": {"i": str(s)},
                "data_format": _s("NHWC")})
        # Full size here is s*(n + T - 1); ncnn's is (n - 1)*s + k, less its pads, plus
        # output_pad rows at the end.
        cut_b, cut_r = s * th - kh + pb - opb, s * tw - kw + pr - opr
        if min(cut_b, cut_r) < 0:
            raise self.refuse(layer, "output padding beyond the kernel")
        if pt or pl or cut_b or cut_r:
            end_mask = 0b1001 | (0b0010 if not cut_b else 0) | (0b0100 if not cut_r else 0)
            ref = self._strided_slice(ref, layer.name + "/crop", [0, pt, pl, 0],
                                      [0, -cut_b, -cut_r, 0], 0b1001, end_mask)
        side = x.side.then(s, kh - s - pt - pb + opb)
        self.output(layer, ref, out_ch, side)

    def _elementwise(self, layer: Layer, make) -> None:
        x = self.input(layer)
        self.output(layer, make(x.ref), x.channels, x.side)

    def layer_ReLU(self, layer: Layer) -> None:
        slope = layer.float(0, 0.0)
        blob = layer.inputs[0]
        if blob in self.fusable:
            node = self.fusable.pop(blob)
            self._fuse(node, "LeakyRelu" if slope else "Relu", slope)
            return self.output(layer, node["name"], self.input(layer).channels,
                               self.input(layer).side)
        return self._elementwise(layer, lambda x: self._activation_op(
            layer, x, 2 if slope else 1, (slope,)))

    def layer_Sigmoid(self, layer: Layer) -> None:
        blob = layer.inputs[0]
        if blob in self.fusable:
            node = self.fusable.pop(blob)
            self._fuse(node, "Sigmoid")
            return self.output(layer, node["name"], self.input(layer).channels,
                               self.input(layer).side)
        x = self.input(layer)
        ref = self._activation_op(layer, x.ref, 4, ())
        self.sigmoids[ref] = layer.outputs[0]
        self.output(layer, ref, x.channels, x.side)

    def layer_Swish(self, layer: Layer) -> None:
        def swish(x: str) -> str:
            sig = self.graph.node("Sigmoid", layer.name + "/sigmoid", [x],
                                  {"T": {"type": "DT_FLOAT"}})
            return self._binary("Mul", layer.name, x, sig)

        self._elementwise(layer, swish)

    def layer_Clip(self, layer: Layer) -> None:
        self._elementwise(layer, lambda x: self._clip(x, layer.name, layer.float(0, -3.4e38),
                                                      layer.float(1, 3.4e38)))

    def layer_PReLU(self, layer: Layer) -> None:
        x = self.input(layer)
        count = layer.int(0, 1)
        slopes = self.weights.raw(count, layer.name)
        if count not in (1, x.channels):
            raise InvalidModel(BAD_MODEL.format(
                detail=f"{layer.name}: {count} slopes for {x.channels} channels"))
        alpha = np.broadcast_to(slopes, (x.channels,)).astype(np.float32)
        ref = self.graph.const(layer.name + "/alpha", alpha)
        if layer.inputs[0] in self.fusable:
            node = self.fusable.pop(layer.inputs[0])
            self._fuse(node, "Prelu", prelu=ref)
            return self.output(layer, node["name"], x.channels, x.side)
        self.output(layer, self._binary("Prelu", layer.name, x.ref, ref), x.channels, x.side)

    BINARY_OPS = {0: "AddV2", 1: "Sub", 2: "Mul", 3: "RealDiv", 4: "Maximum", 5: "Minimum",
                  6: "Pow", 7: "Sub", 8: "RealDiv", 9: "Pow", 10: "Atan2", 11: "Atan2"}
    REVERSED = {7, 8, 9, 11}

    def layer_BinaryOp(self, layer: Layer) -> None:
        kind = layer.int(0, 0)
        if kind not in self.BINARY_OPS:
            raise self.refuse(layer, f"operation {kind}")
        a = self.input(layer)
        scalar = layer.int(1, 0) or len(layer.inputs) == 1
        if kind == 2 and scalar and a.side is not None:
            # Deferred: a convolution reading it takes the factor into its weights.
            return self.output(layer, a.ref, a.channels, a.side, factor=layer.float(2, 0.0),
                               deferred=layer.name)
        if scalar:
            b = Blob(self.scalar(layer.name + "/b", layer.float(2, 0.0)), 1, None)
        else:
            b = self.input(layer, 1)
        first, second = (b, a) if kind in self.REVERSED else (a, b)
        channels = max(a.channels, b.channels)
        if 1 < min(a.channels, b.channels) != channels:
            raise InvalidModel(BAD_MODEL.format(detail=f"{layer.name}: {a.channels} and "
                                                       f"{b.channels} channels do not broadcast"))
        ref = self._binary(self.BINARY_OPS[kind], layer.name, first.ref, second.ref)
        # the sigmoid's own blob, read by this layer alone (not through a Split)
        if (kind == 1 and scalar and layer.float(2, 0.0) == 0.5
                and self.sigmoids.get(a.ref) == layer.inputs[0]
                and self.consumers.get(layer.inputs[0], 0) == 1):
            self.centred.append((a.ref, ref, b.ref))
        self.output(layer, ref, channels, self.same_side(layer, [a.side, b.side]))

    def layer_Eltwise(self, layer: Layer) -> None:
        kind = layer.int(0, 1)
        inputs = [self.input(layer, i) for i in range(len(layer.inputs))]
        coeffs = layer.array(1)
        if coeffs and len(coeffs) != len(inputs):
            raise InvalidModel(BAD_MODEL.format(detail=f"{layer.name}: coefficients"))
        refs = [x.ref for x in inputs]
        if kind == 1 and coeffs:
            refs = [r if c == 1 else self._binary("Mul", f"{layer.name}/coeff{i}", r,
                                                  self.scalar(f"{layer.name}/c{i}", c))
                    for i, (r, c) in enumerate(zip(refs, coeffs, strict=True))]
        op = {0: "Mul", 1: "AddV2", 2: "Maximum"}.get(kind)
        if op is None:
            raise self.refuse(layer, f"operation {kind}")
        out = refs[0]
        for i, ref in enumerate(refs[1:]):
            out = self._binary(op, f"{layer.name}/{i}" if i < len(refs) - 2 else layer.name,
                               out, ref)
        self.output(layer, out, inputs[0].channels,
                    self.same_side(layer, [x.side for x in inputs]))

    def layer_Concat(self, layer: Layer) -> None:
        inputs = [self.input(layer, i) for i in range(len(layer.inputs))]
        axis = layer.int(0, 0)
        axis = axis + 3 if axis < 0 else axis
        if axis != 0:
            raise self.refuse(layer, "concatenation along height or width")
        self.output(layer, self._concat([x.ref for x in inputs], layer.name, 3),
                    sum(x.channels for x in inputs),
                    self.same_side(layer, [x.side for x in inputs]))

    def layer_PixelShuffle(self, layer: Layer) -> None:
        x = self.input(layer)
        r = layer.int(0, 1)
        mode = layer.int(1, 0)
        if r < 1 or x.channels % (r * r):
            raise InvalidModel(BAD_MODEL.format(
                detail=f"{layer.name}: {x.channels} channels do not shuffle by {r}"))
        out_ch = x.channels // (r * r)
        ref = x.ref
        if mode == 0:
            # PyTorch order: channel c*r*r + i*r + j goes to (i, j) of channel c; TF's
            # DepthToSpace takes (i*r + j)*C + c. Reorder the producing conv's filters when
            # it feeds only this layer, else gather.
            perm = np.array([c * r * r + k for k in range(r * r) for c in range(out_ch)])
            producer = self.produced_by_conv.get(layer.inputs[0])
            sole = self.consumers.get(layer.inputs[0], 0) == 1
            if producer and sole and producer["name"] == x.ref:
                self._permute_outputs(producer, perm)
            else:
                g = self.graph
                ref = g.node("GatherV2", layer.name + "/order", [
                    ref, g.const(layer.name + "/perm", perm.astype(np.int32)),
                    g.const(layer.name + "/axis", np.array(3, np.int32))],
                    {"Tparams": {"type": "DT_FLOAT"}, "Tindices": {"type": "DT_INT32"},
                     "batch_dims": {"i": "0"}})
        elif mode != 1:
            raise self.refuse(layer, f"mode {mode}")
        if r > 1:
            ref = self.graph.node("DepthToSpace", layer.name, [ref], {
                "T": {"type": "DT_FLOAT"}, "block_size": {"i": str(r)},
                "data_format": _s("NHWC")})
        self.output(layer, ref, out_ch, x.side.then(r))

    def _permute_outputs(self, node: dict, perm: np.ndarray) -> None:
        weights = {name: (i, value, half) for i, (name, value, half)
                   in enumerate(self.graph.weights)}
        for key in ("_filter", "_bias"):
            i, value, half = weights[node[key]]
            self.graph.weights[i] = (node[key], np.ascontiguousarray(value[..., perm]), half)
        if len(node["input"]) > 3:  # a fused PReLU's slopes follow the channels too
            i, value, half = weights[node["input"][3]]
            self.graph.weights[i] = (node["input"][3], np.ascontiguousarray(value[perm]), half)

    def layer_Interp(self, layer: Layer) -> None:
        x = self.input(layer)
        kind = layer.int(0, 0)
        if layer.int(3, 0) or layer.int(4, 0) or layer.int(5, 0) or len(layer.inputs) > 1:
            raise self.refuse(layer, "a fixed or reference output size")
        if layer.int(6, 0):
            raise self.refuse(layer, "align_corner")
        sh, sw = (Fraction(layer.float(k, 1.0)).limit_denominator(16) for k in (1, 2))
        if sh != sw or abs(float(sh) - layer.float(1, 1.0)) > 1e-6 or sh <= 0:
            raise self.refuse(layer, f"scales {layer.get(1)} x {layer.get(2)}")
        p, q = sh.numerator, sh.denominator
        if kind == 1 and q == 1:
            # Nearest by an integer factor: every output pixel of a p x p block is the input
            # pixel, i.e. DepthToSpace of the channels repeated p² times.
            ref = self._concat([x.ref] * (p * p), layer.name + "/repeat", 3)
            ref = self.graph.node("DepthToSpace", layer.name, [ref], {
                "T": {"type": "DT_FLOAT"}, "block_size": {"i": str(p)},
                "data_format": _s("NHWC")}) if p > 1 else ref
        elif kind in (1, 2, 3):
            ref = self._polyphase(layer, x, kind, p, q)
        else:
            raise self.refuse(layer, f"resize type {kind}")
        side = x.side.then(sh)
        if side.a.denominator != 1 or side.b.denominator != 1:
            raise self.refuse(layer, f"scale {sh} on a side that does not divide by {q}")
        self.output(layer, ref, x.channels, side)

    def _polyphase(self, layer: Layer, x: Blob, kind: int, p: int, q: int) -> str:
        """Resize by p/q as one strided convolution over p² phases plus DepthToSpace."""
        taps = []  # per phase r: {offset from q*a: weight}
        for r in range(p):
            if kind == 1:
                taps.append({math.floor(r * q / p): 1.0})
                continue
            centre = (r + 0.5) * q / p - 0.5
            base = math.floor(centre)
            frac = centre - base
            if kind == 2:
                taps.append({base: 1.0 - frac, base + 1: frac})
            else:
                taps.append(dict(zip(range(base - 1, base + 3), _cubic(frac), strict=True)))
        low = min(0, min(min(t) for t in taps))
        high = max(max(t) for t in taps)
        size = high - low + 1
        c = x.channels
        filt = np.zeros((size, size, c, p * p * c), np.float32)
        for ry, wy in enumerate(taps):
            for rx, wx in enumerate(taps):
                for dy, vy in wy.items():
                    for dx, vx in wx.items():
                        for ch in range(c):
                            filt[dy - low, dx - low, ch, (ry * p + rx) * c + ch] += vy * vx
        after = max(0, high + 1 - q)
        ref = self._replicate(x.ref, layer.name, (-low, after, -low, after))
        g = self.graph
        ref = g.node("Conv2D", layer.name + "/phases", [ref, g.const(layer.name + "/taps", filt)],
                     _conv_attr((q, q), (1, 1), "VALID"))
        if p > 1:
            ref = g.node("DepthToSpace", layer.name, [ref], {
                "T": {"type": "DT_FLOAT"}, "block_size": {"i": str(p)},
                "data_format": _s("NHWC")})
        return ref

    def layer_MemoryData(self, layer: Layer) -> None:
        w, h, c = layer.int(0, 0), layer.int(1, 0), layer.int(2, 0)
        if layer.int(11, 0):
            raise self.refuse(layer, "4-D data")
        dims = [d for d in (c, h, w) if d]
        count = math.prod(dims) if dims else 1
        data = self.weights.raw(count, layer.name)
        if c:
            value = data.reshape(c, h or 1, w or 1).transpose(1, 2, 0)[None]
        elif h:
            raise self.refuse(layer, "2-D data (ambiguous against an image)")
        elif w == 1 or not w:
            value = data.reshape(())
        else:
            raise self.refuse(layer, "1-D data of more than one value")
        channels = value.shape[-1] if value.ndim else 1
        self.output(layer, self.graph.const(layer.name, value), channels, None)

    def layer_Crop(self, layer: Layer) -> None:
        x = self.input(layer)
        if len(layer.inputs) > 1:
            raise self.refuse(layer, "a reference blob")
        starts, ends, axes = layer.array(9), layer.array(10), layer.array(11)
        cut = {0: [0, 0], 1: [0, 0], 2: [0, 0]}  # ncnn axis (c, h, w): [from start, from end]
        keep_c = None
        if starts or ends:
            axes = axes or tuple(range(len(starts)))
            for axis, start, end in zip(axes, starts, ends, strict=False):
                axis = axis + 3 if axis < 0 else axis
                if start < 0:
                    raise self.refuse(layer, "a start counted from the end")
                cut[axis][0] = start
                if end < 0:
                    cut[axis][1] = -end
                elif end < (1 << 30):
                    if axis != 0:
                        raise self.refuse(layer, "a fixed output size")
                    keep_c = end - start
        else:
            if layer.int(3, 0) or layer.int(4, 0):
                raise self.refuse(layer, "a fixed output size")
            cut = {0: [layer.int(2), layer.int(8)], 1: [layer.int(1), layer.int(7)],
                   2: [layer.int(0), layer.int(6)]}
            if layer.int(5, 0):
                keep_c = layer.int(5)
        channels = keep_c if keep_c is not None else x.channels - cut[0][0] - cut[0][1]
        if channels <= 0 or cut[0][0] + channels > x.channels:
            raise InvalidModel(BAD_MODEL.format(detail=f"{layer.name}: crops every channel"))
        begin = [0, cut[1][0], cut[2][0], cut[0][0]]
        end = [0, -cut[1][1], -cut[2][1], cut[0][0] + channels]
        end_mask = 0b0001 | (0b0010 if not cut[1][1] else 0) | (0b0100 if not cut[2][1] else 0)
        ref = self._strided_slice(x.ref, layer.name, begin, end, 0b0001, end_mask)
        side = x.side.then(1, -cut[1][0] - cut[1][1])
        if cut[1] != cut[2]:
            raise self.refuse(layer, "different crops of height and width")
        self.output(layer, ref, channels, side)

    def layer_Padding(self, layer: Layer) -> None:
        x = self.input(layer)
        pt, pb, pl, pr = (layer.int(k, 0) for k in range(4))
        kind, value = layer.int(4, 0), layer.float(5, 0.0)
        if layer.int(6, 0) or layer.int(7, 0) or layer.int(8, 0):
            raise self.refuse(layer, "padding of channels")
        if (pt, pb) != (pl, pr) and pt + pb != pl + pr:
            raise self.refuse(layer, "different padding of height and width")
        if kind == 0:
            ref = self._pad(x.ref, layer.name, (pt, pb, pl, pr), value)
        elif kind == 1:
            ref = self._replicate(x.ref, layer.name, (pt, pb, pl, pr))
        elif kind == 2:
            paddings = self.graph.const(layer.name + "/paddings", np.array(
                [[0, 0], [pt, pb], [pl, pr], [0, 0]], np.int32))
            ref = self.graph.node("MirrorPad", layer.name, [x.ref, paddings], {
                "T": {"type": "DT_FLOAT"}, "mode": _s("REFLECT")})
        else:
            raise self.refuse(layer, f"padding type {kind}")
        self.output(layer, ref, x.channels, x.side.then(1, pt + pb))


def _cubic(frac: float) -> list[float]:
    """ncnn's bicubic weights (A = -0.75) for taps at -1, 0, 1, 2 around the sample."""
    a = -0.75
    x0, x1, x2 = frac + 1, frac, 1 - frac
    w0 = a * x0**3 - 5 * a * x0**2 + 8 * a * x0 - 4 * a
    w1 = (a + 2) * x1**3 - (a + 3) * x1**2 + 1
    w2 = (a + 2) * x2**3 - (a + 3) * x2**2 + 1
    return [w0, w1, w2, 1.0 - w0 - w1 - w2]


def _scale_and_margin(side: Side) -> tuple[int, int]:
    """From out = a*n + b: the factor a, and the margin m with out = a*(n - 2m)."""
    if side.a.denominator != 1 or side.a < 1:
        raise UnsupportedModel(NOT_AN_UPSCALER.format(
            detail=f"its output side is {side.a} times its input side"))
    scale = int(side.a)
    margin = -side.b / (2 * scale)
    if margin < 0 or margin.denominator != 1:
        raise UnsupportedModel(NOT_AN_UPSCALER.format(
            detail=f"its output is {scale}n{side.b:+} pixels for an n-pixel input"))
    return scale, int(margin)


def convert(param: str | bytes, weights: bytes | memoryview) -> Converted:
    """An ncnn .param + .bin pair as a TF.js graph model (see the module docstring)."""
    if isinstance(param, bytes | bytearray | memoryview):
        try:
            param = bytes(param).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidModel(BAD_MODEL.format(detail="the .param file is not text")) from None
    return _Converter(parse_param(param), WeightReader(weights)).run()


def convert_to_json(param: str | bytes, weights: bytes | memoryview) -> tuple[str, bytes, dict]:
    """For the worker: (model.json text with the weights inline-specified, weight bytes,
    {scale, margin, layerTypes}). The bytes go to tf.io.fromMemory as they are."""
    model = convert(param, weights)
    meta = {"scale": model.scale, "margin": model.margin, "layerTypes": list(model.layer_types)}
    return json.dumps(model.model_json([])), model.weight_data, meta
