"""A model as an ONNX graph (through the `onnx` package: `pip install onnx`), so that
it runs without xpbp, in onnxruntime or any other ONNX runtime.

The graph (opset 13, float32) takes `x`, rows of features `(N, sizes[0])`, and
computes what `xpbp.Network` computes for them: the stored scaling
(`Sub`, `Div`), each layer's z = x wᵀ + b (`Gemm`) and its σ (`Sigmoid`,
`Tanh`, `Relu`, `Exp`, `Softmax`, or nothing for the identity). Its outputs:

- a classifier: `probabilities` `(N, k)`, as `predict_proba` gives them (for one
  sigmoid output p, the columns 1 − p and p), and `label` `(N,)`, int64, the index of
  the most probable class (`classes` in the model file names them; a probability of
  exactly 0.5 gives 0 here and 1 in `predict`);
- a multi-label classifier: `probabilities`, each label's;
- a regression: `predictions` `(N, k)`, with the stored target scaling undone.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import files, tasks
from .formats import ModelFile

__all__ = ["OPSET", "graph", "write"]

OPSET = 13
_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "exp": "Exp"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise RuntimeError("exporting to ONNX needs the onnx package: pip install onnx (or pip install -e '.[onnx]')") from None
    return onnx


def graph(model: ModelFile) -> Any:
    """The `onnx.ModelProto` of `model`, checked by `onnx.checker`."""
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    config, nodes, weights = model.config, [], []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    a = "x"
    if model.scaling is not None:
        nodes.append(helper.make_node("Sub", [a, constant("scaling_offset", model.scaling.offset)], ["centred"]))
        nodes.append(helper.make_node("Div", ["centred", constant("scaling_scale", model.scaling.scale)], ["scaled"]))
        a = "scaled"
    L = len(model.weights)
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        sigma = config.output_activation if l == L - 1 else config.activation
        z = f"z{l}"
        nodes.append(helper.make_node("Gemm", [a, constant(f"w{l}", w), constant(f"b{l}", b.ravel())], [z], transB=1))
        a = f"a{l}"
        if sigma == "softmax":
            nodes.append(helper.make_node("Softmax", [z], [a], axis=1))
        elif sigma == "identity":
            a = z
        else:
            nodes.append(helper.make_node(_OPS[sigma], [z], [a]))
    outputs = _outputs(model, a, nodes, constant)
    n_in = config.sizes[0]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", n_in])
    proto = helper.make_model(
        helper.make_graph(nodes, "xpbp", [x], outputs, initializer=weights),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="xpbp",
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _outputs(model: ModelFile, a: str, nodes: list[Any], constant: Any) -> list[Any]:
    """The graph's outputs from the last activations `a`, by the model's task."""
    onnx = _onnx()
    helper, FLOAT, k = onnx.helper, onnx.TensorProto.FLOAT, model.config.sizes[-1]
    task = model.config.task or tasks.infer(model.config.output_activation, k).name
    if task == "regression":
        if model.target_scaling is not None:
            nodes.append(helper.make_node("Mul", [a, constant("target_scale", model.target_scaling.scale)], ["unscaled"]))
            nodes.append(helper.make_node("Add", ["unscaled", constant("target_offset", model.target_scaling.offset)], ["out"]))
            a = "out"
        nodes.append(helper.make_node("Identity", [a], ["predictions"]))
        return [helper.make_tensor_value_info("predictions", FLOAT, ["N", k])]
    if k == 1:
        nodes.append(helper.make_node("Sub", [constant("one", np.ones(1)), a], ["not"]))
        nodes.append(helper.make_node("Concat", ["not", a], ["probabilities"], axis=1))
        k = 2
    else:
        nodes.append(helper.make_node("Identity", [a], ["probabilities"]))
    probabilities = helper.make_tensor_value_info("probabilities", FLOAT, ["N", k])
    if task == "multilabel":
        return [probabilities]
    nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
    return [helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"]), probabilities]


def write(model: ModelFile, path: str | os.PathLike) -> None:
    """Write `model` as an ONNX file at `path`, atomically (`xpbp.files.replacing`)."""
    proto = graph(model)
    with files.replacing(path) as f:
        f.write(proto.SerializeToString())
