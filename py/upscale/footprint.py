"""How large a model's tensors grow with its tile, read from its TF.js topology.

An upscaler's tensors are not all at the input's resolution: the layers after its pixel
shuffle or upsampling run at up to `scale`² times the pixels, and an x8 model's last
convolution reads 8² x 192 values per input pixel. What a GPU must hold for one tile is
therefore a property of the graph, which this module walks once per model (a Keras layers
model or a graph model, the two formats TF.js loads), tracking each tensor's resolution
relative to the input and its channels. Layers and ops it does not know make the answer
None: the caller then learns the limit from a failed warm-up instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Footprint:
    """Per pixel of a model's input tile: `values`, the most numbers any one tensor holds;
    `unrolled`, the most a convolution reads once unrolled (its output's resolution² x kernel
    area x input channels), the matrix TF.js's WebGL backend builds for it (im2col). A
    convolution without padding ("VALID") is counted at its input's size: a few pixels
    more than it has, never fewer."""

    values: int
    unrolled: int


@dataclass(frozen=True)
class _Tensor:
    resolution: Fraction  # its side over the input's
    channels: int

    def values(self) -> Fraction:
        return self.resolution**2 * self.channels


# Layers and ops that keep their input's shape (a pad or a crop changes it by a border only).
_KERAS_SAME = frozenset({"Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Dropout",
                         "MultiplyBeta", "BatchNormalization", "ZeroPadding2D", "Cropping2D"})
_KERAS_MERGE = frozenset({"Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum"})
_GRAPH_SAME = frozenset({"Identity", "Relu", "Relu6", "LeakyRelu", "Prelu", "Elu", "Sigmoid",
                         "Tanh", "Pad", "MirrorPad", "StridedSlice", "Slice", "ClipByValue",
                         "Cast", "Square", "Sqrt", "Neg", "Abs", "Exp", "Softplus",
                         "GatherV2"})  # GatherV2: the converter reorders channels with it
_GRAPH_MERGE = frozenset({"Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Maximum",
                          "Minimum", "BiasAdd", "SquaredDifference", "Pow", "Atan2"})
_GRAPH_CONV = frozenset({"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative",
                         "FusedDepthwiseConv2dNative"})
GRAPH_OPS = _GRAPH_SAME | _GRAPH_MERGE | _GRAPH_CONV | {
    "Const", "Placeholder", "ConcatV2", "DepthToSpace", "Split"}


class _Unknown(Exception):
    """A layer or op whose output shape this module cannot tell."""


def _conv(source: _Tensor, kernel: tuple[int, int], stride: int, channels: int,
          unrolled: list[Fraction]) -> _Tensor:
    """A convolution's output; what it reads unrolled goes to `unrolled`."""
    out = _Tensor(source.resolution / stride, channels)
    unrolled.append(out.resolution**2 * kernel[0] * kernel[1] * source.channels)
    return out


def _joined(sources: list[_Tensor], concatenated: bool) -> _Tensor:
    """Tensors added (or multiplied...) together, or concatenated along the channels."""
    if concatenated:
        return _Tensor(sources[0].resolution, sum(s.channels for s in sources))
    return max(sources, key=_Tensor.values)


def _shuffled(source: _Tensor, block: int) -> _Tensor:
    """A pixel shuffle (DepthToSpace): channels become a block x block of pixels."""
    return _Tensor(source.resolution * block, source.channels // block**2)


def footprint(topology: Mapping) -> Footprint | None:
    """The footprint of the model a TF.js model.json's `modelTopology` describes, or None
    where it holds something this module does not know."""
    try:
        if "node" in topology:
            tensors, unrolled = _graph(topology["node"])
        else:
            config = topology.get("model_config", topology)
            tensors, unrolled = _keras(config["config"]["layers"])
    except (_Unknown, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    if not tensors:
        return None
    return Footprint(values=_whole(max(t.values() for t in tensors)),
                     unrolled=_whole(max(unrolled, default=0)))


def _whole(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def _walk(names: list, inputs_of: Callable, shape_of: Callable) -> dict:
    """Each name's output, in dependency order, whatever order the file lists them in
    (iteratively: a large model's chain is thousands of layers deep)."""
    done: dict = {}
    for root in names:
        stack, entered = [root], set()
        while stack:
            name = stack[-1]
            if name in done:
                stack.pop()
                continue
            pending = [source for source in inputs_of(name) if source not in done]
            if not pending:
                done[name] = shape_of(name, [done[source] for source in inputs_of(name)])
                stack.pop()
            elif name in entered:
                raise _Unknown(f"a cycle through {name}")
            else:
                entered.add(name)
                stack.extend(pending)
    return done


def _keras(layers: list) -> tuple[list[_Tensor], list[Fraction]]:
    by_name = {layer["name"]: layer for layer in layers}
    unrolled: list[Fraction] = []

    def inputs_of(name):
        nodes = by_name[name].get("inbound_nodes") or []
        if len(nodes) > 1:
            raise _Unknown(f"{name} is shared")  # one call per layer in these models
        return [entry[0] for entry in nodes[0]] if nodes else []

    def shape_of(name, sources):
        layer = by_name[name]
        kind, config = layer["class_name"], layer.get("config", {})
        if kind == "InputLayer":
            shape = config.get("batch_input_shape") or config.get("batch_shape")
            return _Tensor(Fraction(1), int(shape[-1] or 3))
        if not sources:
            raise _Unknown(name)
        first = sources[0]
        shuffle = re.fullmatch(r"PixelShuffle(\d+)x", kind)
        if kind == "Conv2D":
            kernel = config["kernel_size"]
            return _conv(first, (int(kernel[0]), int(kernel[1])),
                         int(config.get("strides", [1])[0]), int(config["filters"]), unrolled)
        if kind in _KERAS_SAME:
            return first
        if kind in _KERAS_MERGE or kind == "Concatenate":
            return _joined(sources, kind == "Concatenate")
        if kind == "UpSampling2D":
            return _Tensor(first.resolution * int(config.get("size", [2])[0]), first.channels)
        if shuffle:
            return _shuffled(first, int(config.get("scale") or shuffle.group(1)))
        raise _Unknown(kind)

    return list(_walk(list(by_name), inputs_of, shape_of).values()), unrolled


def _graph(nodes: list) -> tuple[list[_Tensor], list[Fraction]]:
    by_name = {node["name"]: node for node in nodes}
    unrolled: list[Fraction] = []

    def inputs_of(name):
        # "name:1" is a node's second output, "^name" a control edge: neither is a new shape
        return [source.lstrip("^").split(":")[0] for source in by_name[name].get("input", [])
                if not source.startswith("^")]

    def shape_of(name, sources):
        node = by_name[name]
        op, attr = node["op"], node.get("attr", {})
        if op == "Const":
            return _const_shape(attr)
        if op == "Placeholder":
            dims = attr.get("shape", {}).get("shape", {}).get("dim", [])
            channels = int(dims[-1].get("size", 3)) if dims else 3
            return _Tensor(Fraction(1), channels if channels > 0 else 3)
        tensors = [s for s in sources if isinstance(s, _Tensor)]
        if not tensors:
            raise _Unknown(name)
        if op in _GRAPH_CONV:
            kernel = sources[1]  # the filter Const: its shape, H, W, in, out (or multiplier)
            channels = kernel[3] if op.endswith("Conv2D") else kernel[2] * kernel[3]
            stride = int(attr.get("strides", {}).get("list", {}).get("i", [1, 1])[1])
            return _conv(tensors[0], kernel[:2], stride, channels, unrolled)
        if op in _GRAPH_SAME:
            return tensors[0]
        if op in _GRAPH_MERGE or op == "ConcatV2":
            return _joined(tensors, op == "ConcatV2")
        if op == "DepthToSpace":
            return _shuffled(tensors[0], int(attr["block_size"]["i"]))
        if op == "Split":  # along the channels, into equal parts (each "name:k" alike)
            parts = int(attr["num_split"]["i"])
            return _Tensor(tensors[0].resolution, tensors[0].channels // parts)
        raise _Unknown(op)

    shapes = _walk(list(by_name), inputs_of, shape_of)
    return [s for s in shapes.values() if isinstance(s, _Tensor)], unrolled


def _const_shape(attr: Mapping) -> tuple[int, ...]:
    dims = attr.get("value", {}).get("tensor", {}).get("tensorShape", {}).get("dim", [])
    return tuple(int(dim.get("size", 1)) for dim in dims)
