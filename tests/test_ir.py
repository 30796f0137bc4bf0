"""Model loading: order, names, symbolic dims, old opsets, and malformed files.

Everything wrong with a user's file must come out as `ModelError` (exit 2, one line), never as
another exception: the fuzz test at the end mutates and truncates a valid model to check that.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from numsentry.errors import ModelError
from numsentry.ir import load_model


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto], opset: int = 13,
           inits: list[onnx.TensorProto] | None = None) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _diamond(shape: list[int | str] | None = None) -> onnx.ModelProto:
    """x -> Relu -> a; a -> Exp (named) -> b; a -> Neg -> c; Add(b, c) -> y."""
    shape = shape or [2, 3]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Exp", ["a"], ["b"], name="my_exp"),
        helper.make_node("Neg", ["a"], ["c"]),
        helper.make_node("Add", ["b", "c"], ["y"]),
    ]
    return _model(nodes, [x], [y])


def _assert_topological(nodes: list) -> None:
    produced = {"x"}
    for n in nodes:
        assert all(i in produced for i in n.inputs if i), f"{n.name} reads before its producer"
        produced |= set(n.outputs)


# ---- order and names --------------------------------------------------------------------


def test_nodes_come_out_in_topological_order() -> None:
    m = load_model(_diamond())
    _assert_topological(m.graph.nodes)
    assert [n.index for n in m.graph.nodes] == list(range(4))


def test_shuffled_graph_is_put_in_topological_order() -> None:
    m = _diamond()
    nodes = list(m.graph.node)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(nodes)
        if [n.op_type for n in nodes] != ["Relu", "Exp", "Neg", "Add"]:
            break
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    loaded = load_model(m)
    _assert_topological(loaded.graph.nodes)
    assert sorted(n.op_type for n in loaded.graph.nodes) == ["Add", "Exp", "Neg", "Relu"]


def test_unnamed_nodes_get_stable_names_and_model_names_are_kept() -> None:
    m = load_model(_diamond())
    names = [n.name for n in m.graph.nodes]
    assert names == ["Relu_0", "my_exp", "Neg_2", "Add_3"]
    assert names == [n.name for n in load_model(_diamond()).graph.nodes]  # stable across loads
    assert len(set(names)) == len(names)


def test_duplicate_node_names_are_made_unique() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="n"), helper.make_node("Neg", ["a"], ["y"], name="n")]
    names = [n.name for n in load_model(_model(nodes, [x], [y])).graph.nodes]
    assert len(set(names)) == 2 and names[0] == "n"


# ---- symbolic dims ----------------------------------------------------------------------


def test_symbolic_dims_default_to_one() -> None:
    m = load_model(_diamond(["N", 3]))
    assert m.graph.inputs[0].shape == [1, 3]
    assert m.default_dims == ["N"]
    assert m.dims == {"N": 1}


def test_dim_values_are_applied() -> None:
    m = load_model(_diamond(["N", 3]), dims={"N": 5})
    assert m.graph.inputs[0].shape == [5, 3]
    assert m.default_dims == []
    assert m.dims == {"N": 5}
    # shape inference saw the value: the output is 5 x 3 too
    assert m.graph.value_types["y"].shape == [5, 3]


def test_unnamed_symbolic_dim_defaults_to_one() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    m = load_model(_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y]))
    assert m.graph.inputs[0].shape == [1, 3]


# ---- opsets -----------------------------------------------------------------------------


def test_old_opset_is_converted() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    m = load_model(_model([helper.make_node("Squeeze", ["x"], ["y"], axes=[0])], [x], [y], opset=11))
    assert m.opset >= 13
    sq = next(n for n in m.graph.nodes if n.op_type == "Squeeze")
    assert len(sq.inputs) == 2 and "axes" not in sq.attrs  # axes became an input at opset 13


@pytest.mark.parametrize("opset", [1, 6, 7, 9, 10, 12])
def test_old_opsets_convert_or_fail_cleanly(opset: int) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Softmax", ["a"], ["y"])]
    try:
        m = load_model(_model(nodes, [x], [y], opset=opset))
    except ModelError as e:
        assert "opset" in str(e)
    else:
        assert m.opset >= 13


def test_opset_newer_than_onnx_is_rejected() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=onnx.defs.onnx_opset_version() + 1)
    with pytest.raises(ModelError, match="opset"):
        load_model(m)


# ---- malformed inputs -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "nope.onnx")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        load_model(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_model(p)


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.onnx"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError):
        load_model(p)


def test_text_file(tmp_path: Path) -> None:
    p = tmp_path / "model.onnx"
    p.write_text("this is not a model\n")
    with pytest.raises(ModelError):
        load_model(p)


def test_truncated_model(tmp_path: Path) -> None:
    data = _with_weights().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as e:
        load_model(p)
    assert str(p) in str(e.value)


def test_cycle() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Relu", ["a"], ["c"]),
             helper.make_node("Neg", ["a"], ["y"])]
    with pytest.raises(ModelError):
        load_model(_model(nodes, [x], [y]))


def test_inconsistent_shapes() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])
    with pytest.raises(ModelError):
        load_model(_model([helper.make_node("MatMul", ["a", "b"], ["y"])], [a, b], [y]))


def test_input_never_produced() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    with pytest.raises(ModelError):
        load_model(_model([helper.make_node("Add", ["x", "ghost"], ["y"])], [x], [y]))


def test_valid_model_from_path_bytes_and_proto(tmp_path: Path) -> None:
    m = _with_weights()
    p = tmp_path / "ok.onnx"
    p.write_bytes(m.SerializeToString())
    for src in (p, str(p), m.SerializeToString(), m):
        loaded = load_model(src)
        assert [n.op_type for n in loaded.graph.nodes] == ["MatMul", "Add", "Relu"]
        assert set(loaded.graph.initializers) == {"w", "bias"}


# ---- fuzz -------------------------------------------------------------------------------


def _with_weights() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bias")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "bias"], ["z"]),
             helper.make_node("Relu", ["z"], ["y"])]
    return _model(nodes, [x], [y], inits=[w, b])


def test_fuzzed_models_load_or_raise_model_error() -> None:
    """200 mutated/truncated copies of a valid model: load_model succeeds or raises ModelError."""
    data = _with_weights().SerializeToString()
    rng = random.Random(1234)
    outcomes = {"ok": 0, "ModelError": 0}
    for _ in range(200):
        buf = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:  # truncate
            buf = buf[: rng.randrange(len(buf))]
        elif kind == 1:  # flip random bytes
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == 2:  # flip bits in the header (field tags, lengths)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(min(len(buf), 64))
                buf[i] ^= 1 << rng.randrange(8)
        else:  # splice: duplicate or delete a chunk
            i, j = sorted(rng.randrange(len(buf)) for _ in range(2))
            buf = buf[:i] + buf[j:] if rng.random() < 0.5 else buf[:j] + buf[i:j] + buf[j:]
        try:
            load_model(bytes(buf))
            outcomes["ok"] += 1
        except ModelError:
            outcomes["ModelError"] += 1
    assert outcomes["ModelError"] > 0
