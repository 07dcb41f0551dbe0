"""The Open Inference Protocol v2 codec: every datatype round-trips, every bad tensor is
refused with a message that names the input, and batching splits back exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from threadline.domain import errors
from threadline.domain.models import TensorSpec
from threadline.serving import _binary, tensors

X = TensorSpec("x", "FP64", (-1,))
Y = TensorSpec("y", "FP64", (-1,))
GRID = TensorSpec("grid", "FP64", (-1, 3))

SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False], "UINT8": [0, 255], "UINT16": [0, 65535], "UINT32": [0, 2**32 - 1],
    "UINT64": [0, 2**64 - 1], "INT8": [-128, 127], "INT16": [-(2**15), 2**15 - 1],
    "INT32": [-(2**31), 2**31 - 1], "INT64": [-(2**63), 2**63 - 1], "FP16": [0.5, -65504.0],
    "FP32": [0.1, 3.4e38], "FP64": [0.1, -1.7976931348623157e308], "BYTES": ["a", "été ✓"],
}
DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
          "BYTES": np.object_}


def tensor(name: str = "x", datatype: str = "FP64", shape: Any = (2,), data: Any = (0.5, 1.5),
           **extra: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": list(shape), "data": list(data), **extra}


def body(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def refused(payload: bytes, specs: tuple[TensorSpec, ...] = (X,), **kwargs: Any) -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        tensors.decode_request(payload, specs, **kwargs)
    return str(caught.value)


def respond(outputs: dict[str, np.ndarray], specs: tuple[TensorSpec, ...] = (),
            **kwargs: Any) -> dict[str, Any]:
    payload, header_length = tensors.encode_response("m", "3", "req-1", outputs, specs, **kwargs)
    assert header_length is None
    return orjson.loads(payload)


def test_binary_outputs_follow_the_json_header_and_read_back_exactly() -> None:
    outputs = {"label": np.array(["a", "bé"], dtype=object), "probabilities": np.array([[0.1, np.nan], [1.0, 0.0]]),
               "flag": np.array([True, False])}
    payload, length = tensors.encode_response("m", "3", "r", outputs, (), None, frozenset({"probabilities", "flag",
                                                                                            "label"}))
    assert length is not None
    header = orjson.loads(payload[:length])
    binary = memoryview(payload)[length:]
    offset, found = 0, {}
    for tensor in header["outputs"]:
        size = tensor["parameters"]["binary_data_size"]
        assert "data" not in tensor
        found[tensor["name"]] = _binary.unpack(binary[offset:offset + size], tensors.dtype_of(tensor["datatype"]),
                                               tuple(tensor["shape"]), tensor["name"])
        offset += size
    assert offset == len(binary)
    assert found["label"].tolist() == ["a", "bé"]
    assert np.array_equal(found["probabilities"], outputs["probabilities"], equal_nan=True)  # NaN survives
    assert found["flag"].tolist() == [True, False]


def test_binary_is_asked_per_output_or_for_all() -> None:
    spec = (TensorSpec("x", "FP64", (-1,)),)
    one = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
           "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}]}
    assert tensors.decode_request(orjson.dumps(one), spec).binary_outputs == frozenset({"label"})
    every = {"inputs": one["inputs"], "parameters": {"binary_data_output": True}}
    assert tensors.decode_request(orjson.dumps(every), spec).binary_outputs is True
    bad = {"inputs": one["inputs"], "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]}
    with pytest.raises(errors.InvalidInput, match=r"outputs\[0\].parameters.binary_data"):
        tensors.decode_request(orjson.dumps(bad), spec)


# --- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_round_trips(datatype: str) -> None:
    spec = TensorSpec("t", datatype, (-1,))
    decoded = tensors.decode_request(body(tensor("t", datatype, (2,), SAMPLES[datatype])), (spec,))
    array = decoded.tensors["t"]
    assert array.dtype == np.dtype(DTYPES[datatype]) == tensors.dtype_of(datatype)
    assert array.tolist() == np.array(SAMPLES[datatype], dtype=DTYPES[datatype]).tolist()
    [output] = respond(decoded.tensors)["outputs"]
    assert output == {"name": "t", "datatype": datatype, "shape": [2], "data": output["data"]}
    assert np.array(output["data"], dtype=DTYPES[datatype]).tolist() == array.tolist()


def test_request_fields_are_kept() -> None:
    payload = body(tensor(), id="abc", parameters={"trace": True},
                   outputs=[{"name": "label"}, {"name": "probabilities", "parameters": {}}])
    decoded = tensors.decode_request(payload, (X,))
    assert (decoded.id, decoded.rows, decoded.parameters) == ("abc", 2, {"trace": True})
    assert decoded.requested_outputs == ("label", "probabilities")


def test_absent_or_empty_outputs_mean_every_output() -> None:
    assert tensors.decode_request(body(tensor()), (X,)).requested_outputs is None
    assert tensors.decode_request(body(tensor(), outputs=[]), (X,)).requested_outputs is None
    assert tensors.decode_request(body(tensor()), (X,)).id is None


def test_flat_and_nested_data_give_the_same_row_major_array() -> None:
    flat = tensors.decode_request(body(tensor("grid", shape=(2, 3), data=range(6))), (GRID,))
    nested = tensors.decode_request(
        body(tensor("grid", shape=(2, 3), data=[[0, 1, 2], [3, 4, 5]])), (GRID,))
    expected = np.arange(6, dtype=np.float64).reshape(2, 3)
    np.testing.assert_array_equal(flat.tensors["grid"], expected)
    np.testing.assert_array_equal(nested.tensors["grid"], expected)
    assert nested.tensors["grid"].dtype == np.float64 and nested.rows == 2


def test_nested_bytes_keep_their_strings() -> None:
    spec = TensorSpec("words", "BYTES", (-1, 2))
    decoded = tensors.decode_request(
        body(tensor("words", "BYTES", (2, 2), [["a", "b"], ["c", "d"]])), (spec,))
    assert decoded.tensors["words"].dtype == object
    assert decoded.tensors["words"].tolist() == [["a", "b"], ["c", "d"]]


def test_zero_sized_inner_dimension_is_accepted() -> None:
    spec = TensorSpec("e", "INT32", (-1, -1))
    decoded = tensors.decode_request(body(tensor("e", "INT32", (3, 0), [[], [], []])), (spec,))
    assert decoded.tensors["e"].shape == (3, 0) and decoded.rows == 3


# --- refusals ----------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "message"), [
    (b"{not json", "request body is not valid JSON"),
    (b"[1, 2]", "request body must be a JSON object"),
    (b"{}", "inputs: required"),
    (b'{"inputs": []}', "inputs: required"),
    (b'{"inputs": {"x": 1}}', "inputs: required"),
    (b'{"id": 7, "inputs": []}', "id: must be a string"),
    (b'{"inputs": [3]}', "inputs[0]: must be an object"),
    (b'{"inputs": [{"datatype": "FP64"}]}', "inputs[0]: name: required"),
    (b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1e400]}]}',
     "not valid JSON"),
    (b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [NaN]}]}',
     "not valid JSON"),
])
def test_malformed_documents_are_refused(payload: bytes, message: str) -> None:
    assert message in refused(payload)


def test_unknown_input_lists_the_expected_names() -> None:
    message = refused(body(tensor("x"), tensor("z")), (X, Y))
    assert message == "unknown input 'z'; this model takes: x, y"


def test_missing_input_is_named() -> None:
    assert refused(body(tensor("x")), (X, Y)) == "missing inputs: y; this model takes: x, y"


def test_duplicate_input_is_refused() -> None:
    assert refused(body(tensor(), tensor())) == "input 'x': is given more than once"


def test_datatype_must_match_exactly() -> None:
    message = refused(body(tensor(datatype="INT64", data=[1, 2])))
    assert message == "input 'x': datatype is 'INT64', expected FP64"


@pytest.mark.parametrize(("shape", "message"), [
    ("2", "shape must be a list of non-negative integers, not '2'"),
    ([-2], "shape must be a list of non-negative integers, not [-2]"),
    ([2.0], "shape must be a list of non-negative integers, not [2.0]"),
    ([True], "shape must be a list of non-negative integers, not [True]"),
    ([2, 1], "shape [2, 1] does not match the signature's [-1] (-1 = any size)"),
])
def test_shape_is_checked(shape: Any, message: str) -> None:
    payload = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": shape,
                                        "data": [1, 2]}]})
    assert refused(payload) == f"input 'x': {message}"


def test_fixed_dimensions_must_match() -> None:
    message = refused(body(tensor("grid", shape=(1, 2), data=[1, 2])), (GRID,))
    assert message == "input 'grid': shape [1, 2] does not match the signature's [-1, 3] (-1 = any size)"


def test_a_shape_without_batch_dimension_is_refused() -> None:
    scalar = TensorSpec("s", "FP64", ())
    assert refused(body(tensor("s", shape=(), data=[1])), (scalar,)) == \
        "input 's': shape [] has no batch dimension"


@pytest.mark.parametrize(("shape", "data", "message"), [
    ((3,), [1, 2], "data holds 2 values, shape [3] needs 3"),
    ((2, 3), range(5), "data holds 5 values, shape [2, 3] needs 6"),
    ((2, 3), [[1, 2, 3], [4, 5]], "nested data must be rectangular"),
    ((2, 3), [[1, 2], [3, 4], [5, 6]], "nested data must be rectangular"),
    ((2, 3), [[1, 2, 3, 4, 5, 6]], "nested data must be rectangular"),
    ((2, 3), [[1, 2, 3], [4, 5, [6]]], "found an array"),
])
def test_data_must_agree_with_shape(shape: Any, data: Any, message: str) -> None:
    spec = TensorSpec("x", "FP64", (-1,) * len(shape))
    refusal = refused(body(tensor(shape=shape, data=data)), (spec,))
    assert refusal.startswith("input 'x': ") and message in refusal


@pytest.mark.parametrize(("datatype", "data", "found"), [
    ("FP64", ["NaN", 1.0], "found a string"),
    ("FP64", ["Infinity", 1.0], "found a string"),
    ("FP64", [None, 1.0], "found null"),
    ("FP64", [True, 1.0], "found a boolean"),
    ("FP32", [{"v": 1}, 1.0], "found an object"),
    ("INT64", [1.5, 2], "found a number with a fraction or exponent"),
    ("INT64", [1.0, 2], "found a number with a fraction or exponent"),
    ("INT32", [True, 2], "found a boolean"),
    ("BOOL", [1, 0], "found an integer"),
    ("BYTES", [1, "a"], "found an integer"),
])
def test_values_must_have_the_datatypes_json_type(datatype: str, data: list[Any], found: str) -> None:
    spec = TensorSpec("x", datatype, (-1,))
    message = refused(body(tensor(datatype=datatype, data=data)), (spec,))
    assert message.startswith(f"input 'x': data for {datatype} must be JSON ")
    assert message.endswith(found)


@pytest.mark.parametrize(("datatype", "values", "message"), [
    ("UINT8", b"[300, 1]", "a value is out of range for UINT8 (0 to 255)"),
    ("UINT8", b"[-1, 1]", "a value is out of range for UINT8 (0 to 255)"),
    ("INT8", b"[-129, 1]", "a value is out of range for INT8 (-128 to 127)"),
    ("UINT32", b"[4294967296, 1]", "a value is out of range for UINT32"),
    ("UINT64", b"[-1, 1]", "a value is out of range for UINT64"),
    ("INT64", b"[9223372036854775808, 1]", "a value is out of range for INT64"),
    ("INT64", b"[18446744073709551616, 1]", "found a number with a fraction or exponent"),
    ("FP32", b"[1e39, 1]", "a value is too large for FP32"),
    ("FP16", b"[70000, 1]", "a value is too large for FP16"),
])
def test_values_out_of_range_are_refused(datatype: str, values: bytes, message: str) -> None:
    payload = b'{"inputs": [{"name": "x", "datatype": "%s", "shape": [2], "data": %s}]}' % (
        datatype.encode(), values)
    assert message in refused(payload, (TensorSpec("x", datatype, (-1,)),))


def test_inputs_must_share_the_batch_dimension() -> None:
    message = refused(body(tensor("x", data=[1, 2]), tensor("y", shape=(3,), data=[1, 2, 3])),
                      (X, Y))
    assert message.startswith("input 'y': has 3 rows (shape [3]), the inputs before it have 2")


def test_an_empty_batch_is_refused() -> None:
    assert refused(body(tensor(shape=(0,), data=[]))) == "empty batch: input 'x' has shape [0]"


def test_rows_are_capped() -> None:
    message = refused(body(tensor(shape=(3,), data=[1, 2, 3])), max_rows=2)
    assert message == "input 'x': has 3 rows; at most 2 are accepted per request"


@pytest.mark.parametrize(("extra", "message"), [
    ({"parameters": [1]}, "parameters: must be a JSON object"),
    ({"outputs": {"name": "a"}}, "outputs: must be a list of objects with a name"),
    ({"outputs": [{"name": 1}]}, "outputs: must be a list of objects with a name"),
    ({"outputs": [{"name": "a"}, {"name": "a"}]}, "outputs: an output is requested more than once"),
])
def test_request_members_are_checked(extra: dict[str, Any], message: str) -> None:
    assert refused(body(tensor(), **extra)) == message


def test_tensor_parameters_must_be_an_object() -> None:
    assert refused(body(tensor(parameters=3))) == "input 'x': parameters: must be a JSON object"


def test_data_must_be_a_list() -> None:
    payload = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": 1}]})
    assert refused(payload) == "input 'x': data: required, a flat or nested list"


def test_long_values_are_cut_short_in_messages() -> None:
    message = refused(body(tensor("z" * 500)))
    assert len(message) < 120 and message.startswith("unknown input 'zzz")


# --- binary tensor data extension ---------------------------------------------------------

def binary_body(inputs: list[tuple[dict[str, Any], bytes]], **extra: Any) -> tuple[bytes, str]:
    """A body as tritonclient sends it: JSON header, then each input's raw bytes in order."""
    header = orjson.dumps({"inputs": [entry for entry, _ in inputs], **extra})
    return header + b"".join(raw for _, raw in inputs), str(len(header))


def binary_input(name: str, datatype: str, array: np.ndarray, raw: bytes | None = None,
                 ) -> tuple[dict[str, Any], bytes]:
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes() if raw is None else raw
    return ({"name": name, "datatype": datatype, "shape": list(array.shape),
             "parameters": {"binary_data_size": len(raw)}}, raw)


def length_prefixed(*values: bytes) -> bytes:
    return b"".join(len(v).to_bytes(4, "little") + v for v in values)


@pytest.mark.parametrize("datatype", [name for name in SAMPLES if name != "BYTES"])
def test_binary_inputs_round_trip_every_numeric_datatype(datatype: str) -> None:
    array = np.array(SAMPLES[datatype], dtype=DTYPES[datatype]).reshape(2, 1)
    payload, length = binary_body([binary_input("t", datatype, array)])
    spec = TensorSpec("t", datatype, (-1, 1))
    decoded = tensors.decode_request(payload, (spec,), header_length=length)
    assert decoded.tensors["t"].dtype == array.dtype and decoded.rows == 2
    np.testing.assert_array_equal(decoded.tensors["t"], array)


def test_binary_and_json_inputs_mix_and_binary_keeps_nan() -> None:
    floats = np.array([np.nan, 2.5])
    words = np.array(["é", ""], dtype=object)
    payload, length = binary_body([
        binary_input("x", "FP64", floats),
        (tensor("y", data=[1, 2]), b""),
        binary_input("w", "BYTES", words, length_prefixed("é".encode(), b"")),
    ], id="r")
    specs = (X, Y, TensorSpec("w", "BYTES", (-1,)))
    decoded = tensors.decode_request(payload, specs, header_length=length)
    np.testing.assert_array_equal(decoded.tensors["x"], floats)
    assert decoded.tensors["y"].tolist() == [1.0, 2.0] and decoded.id == "r"
    assert decoded.tensors["w"].dtype == object and decoded.tensors["w"].tolist() == ["é", ""]


def test_tritonclients_own_request_bodies_decode() -> None:
    triton = pytest.importorskip("tritonclient.http")
    batch = np.arange(12, dtype=np.float32).reshape(3, 4)
    features = triton.InferInput("features", [3, 4], "FP32")
    features.set_data_from_numpy(batch)  # binary_data=True, tritonclient's default
    labels = triton.InferInput("labels", [3], "BYTES")
    labels.set_data_from_numpy(np.array([b"a", b"bc", b""], dtype=object))
    payload, length = triton.InferenceServerClient.generate_request_body([features, labels])
    specs = (TensorSpec("features", "FP32", (-1, 4)), TensorSpec("labels", "BYTES", (-1,)))
    decoded = tensors.decode_request(payload, specs, header_length=str(length))
    np.testing.assert_array_equal(decoded.tensors["features"], batch)
    assert decoded.tensors["labels"].tolist() == ["a", "bc", ""]


@pytest.mark.parametrize(("case", "message"), [
    ("no header", "input 'x': has binary_data_size, but the request has no Inference-Header-"),
    ("no header, binary data", "request body is not valid JSON: "),
    ("short", "input 'x': binary_data_size 16 runs past the end of the binary data (8 bytes left)"),
    ("left over", "the binary data after the JSON header is 24 bytes, but the inputs' binary"),
    ("wrong size", "input 'x': binary_data_size is 8 bytes; shape [2] needs 16"),
    ("data too", "input 'x': binary_data_size must be a non-negative integer, and then data"),
    ("bad header", "Inference-Header-Content-Length: must be the byte length of the JSON header"),
])
def test_binary_refusals(case: str, message: str) -> None:
    entry, raw = binary_input("x", "FP64", np.array([1.0, 2.0]))
    length: str | None = None
    if case == "short":
        entry["parameters"]["binary_data_size"] = 16
        payload, length = binary_body([(entry, raw[:8])])
    elif case == "wrong size":
        entry["parameters"]["binary_data_size"] = 8
        payload, length = binary_body([(entry, raw[:8])])
    elif case == "data too":
        payload, length = binary_body([({**entry, "data": [1.0, 2.0]}, raw)])
    elif case == "no header":
        payload, length = binary_body([(entry, b"")])
    else:
        payload, length = binary_body([(entry, raw + (b"\0" * 8 if case == "left over" else b""))])
    length = {"no header": None, "no header, binary data": None, "bad header": "12x"}.get(case, length)
    refusal = refused(payload, header_length=length)
    assert refusal.startswith(message)
    if case == "no header, binary data":
        assert refusal.endswith("binary tensor data needs the Inference-Header-Content-Length header")


@pytest.mark.parametrize(("raw", "message"), [
    (length_prefixed(b"a"), "binary BYTES data must be 2 length-prefixed elements"),
    (length_prefixed(b"a", b"bc") + b"!", "binary BYTES data must be 2 length-prefixed elements"),
    (length_prefixed(b"a", b"bc")[:-1], "binary BYTES data must be 2 length-prefixed elements"),
    (length_prefixed(b"a", b"\xff"), "binary BYTES element 1 is not UTF-8 text"),
])
def test_binary_bytes_must_be_length_prefixed_utf8(raw: bytes, message: str) -> None:
    spec = TensorSpec("w", "BYTES", (-1,))
    payload, length = binary_body([binary_input("w", "BYTES", np.empty(2, dtype=object), raw)])
    with pytest.raises(errors.InvalidInput, match=f"^input 'w': {message}"):
        tensors.decode_request(payload, (spec,), header_length=length)


def test_binary_bools_must_be_zero_or_one() -> None:
    spec = TensorSpec("b", "BOOL", (-1,))
    payload, length = binary_body([binary_input("b", "BOOL", np.empty(2, bool), b"\x01\x02")])
    with pytest.raises(errors.InvalidInput, match="input 'b': binary BOOL data must be bytes 0 or 1"):
        tensors.decode_request(payload, (spec,), header_length=length)


# --- outputs ------------------------------------------------------------------------------

def test_select_outputs_follows_the_request_and_refuses_unknown_names() -> None:
    label, proba = TensorSpec("label", "INT64", (-1,)), TensorSpec("proba", "FP64", (-1, 2))
    assert tensors.select_outputs((label, proba), None) == (label, proba)
    assert tensors.select_outputs((label, proba), ("proba",)) == (proba,)
    with pytest.raises(errors.InvalidInput, match="outputs: unknown output 'nope'; this model "
                                                  "returns: label, proba"):
        tensors.select_outputs((label, proba), ("nope",))


def test_response_carries_id_parameters_and_outputs_in_spec_order() -> None:
    outputs = {"label": np.array([1, 0]), "proba": np.array([[0.2, 0.8], [0.9, 0.1]])}
    specs = (TensorSpec("proba", "FP64", (-1, 2)), TensorSpec("label", "INT64", (-1,)))
    document = respond(outputs, specs, parameters={"escalated": [False, True]})
    assert document == {
        "model_name": "m", "model_version": "3", "id": "req-1",
        "parameters": {"escalated": [False, True]},
        "outputs": [
            {"name": "proba", "datatype": "FP64", "shape": [2, 2], "data": [0.2, 0.8, 0.9, 0.1]},
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
        ],
    }


def test_empty_specs_return_every_output_and_no_parameters_member() -> None:
    document = respond({"a": np.array([1.5]), "b": np.array([True])})
    assert [o["name"] for o in document["outputs"]] == ["a", "b"] and "parameters" not in document


def test_output_data_is_row_major_even_for_non_contiguous_arrays() -> None:
    transposed = np.arange(6, dtype=np.int32).reshape(2, 3).T
    [output] = respond({"t": transposed})["outputs"]
    assert output["shape"] == [3, 2] and output["data"] == [0, 3, 1, 4, 2, 5]


def test_non_finite_outputs_are_written_as_null() -> None:
    [output] = respond({"p": np.array([1.0, np.nan, np.inf, -np.inf], dtype=np.float32)})["outputs"]
    assert output["data"] == [1.0, None, None, None]


@pytest.mark.parametrize("array", [
    np.array(["yes", "no"]), np.array([b"yes", b"no"]), np.array(["yes", b"no"], dtype=object),
])
def test_bytes_outputs_are_strings(array: np.ndarray) -> None:
    [output] = respond({"l": array})["outputs"]
    assert output == {"name": "l", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]}


def test_a_declared_output_the_model_did_not_return_is_a_server_error() -> None:
    with pytest.raises(errors.ThreadlineError, match="model m returned no output 'label'") as caught:
        respond({"proba": np.array([0.5])}, (TensorSpec("label", "INT64", (-1,)),))
    assert not isinstance(caught.value, errors.InvalidInput)


def test_model_metadata() -> None:
    assert tensors.model_metadata("iris", ["1", "2"], "sklearn", (GRID,), (X,)) == {
        "name": "iris", "versions": ["1", "2"], "platform": "sklearn",
        "inputs": [{"name": "grid", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
    }


def test_datatype_and_dtype_mappings() -> None:
    for datatype, dtype in DTYPES.items():
        assert tensors.dtype_of(datatype) == np.dtype(dtype)
        assert tensors.datatype_of(dtype) == datatype
    assert tensors.datatype_of(np.dtype("<U5")) == tensors.datatype_of("S3") == "BYTES"
    with pytest.raises(errors.InvalidInput, match="unknown datatype 'FLOAT'; expected one of BOOL"):
        tensors.dtype_of("FLOAT")
    with pytest.raises(errors.InvalidInput, match="numpy dtype complex128 has no"):
        tensors.datatype_of(np.complex128)


# --- batching -----------------------------------------------------------------------------

def test_split_refuses_outputs_whose_rows_do_not_add_up() -> None:
    with pytest.raises(errors.ThreadlineError, match=r"output 'y' has shape \[3\], but the batch has 4"):
        tensors.split_rows({"y": np.zeros(3)}, [2, 2])


def test_concat_of_one_part_or_none() -> None:
    part = {"x": np.array([1.0])}
    assert tensors.concat_rows([part])["x"] is part["x"]
    assert tensors.concat_rows([]) == {}
    with pytest.raises(errors.ThreadlineError, match="different tensors"):
        tensors.concat_rows([part, {"y": np.array([1.0])}])


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, np.ndarray]]:
    width = draw(st.integers(0, 3))
    counts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=5))
    floats = hnp.arrays(np.float64, st.just((sum(counts), width)))
    labels = hnp.arrays(object, st.just((sum(counts),)), elements=st.text(max_size=5))
    whole = {"f": draw(floats), "s": draw(labels), "i": np.arange(sum(counts), dtype=np.int8)}
    return tensors.split_rows(whole, counts)


@given(batches())
def test_concat_then_split_round_trips_exactly(parts: list[dict[str, np.ndarray]]) -> None:
    batch = tensors.concat_rows(parts)
    again = tensors.split_rows(batch, [len(part["f"]) for part in parts])
    assert len(again) == len(parts)
    for before, after in zip(parts, again):
        assert before.keys() == after.keys()
        for name in before:
            assert after[name].dtype == before[name].dtype
            np.testing.assert_array_equal(after[name], before[name])  # NaN equals NaN here


def _elements(datatype: str) -> st.SearchStrategy[Any] | None:
    if datatype == "BYTES":
        return st.text(max_size=8)
    if datatype.startswith("FP"):
        width = {"FP16": 16, "FP32": 32, "FP64": 64}[datatype]
        return st.floats(width=width, allow_nan=False, allow_infinity=False)
    return None  # hypothesis covers the whole range of booleans and integers


@st.composite
def requests(draw: st.DrawFn) -> tuple[TensorSpec, np.ndarray, bool]:
    datatype = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(st.tuples(st.integers(1, 4)) | st.tuples(st.integers(1, 3), st.integers(0, 3)))
    array = draw(hnp.arrays(DTYPES[datatype], shape, elements=_elements(datatype)))
    spec = TensorSpec("t", datatype, (-1,) + shape[1:])
    return spec, array, draw(st.booleans())


@settings(max_examples=200)
@given(requests())
def test_decode_then_encode_preserves_values(case: tuple[TensorSpec, np.ndarray, bool]) -> None:
    spec, array, nested = case
    data = array.tolist() if nested else array.ravel().tolist()
    decoded = tensors.decode_request(body(tensor("t", spec.datatype, array.shape, data)), (spec,))
    assert decoded.tensors["t"].dtype == array.dtype and decoded.rows == array.shape[0]
    np.testing.assert_array_equal(decoded.tensors["t"], array)
    [output] = respond(decoded.tensors, (spec,))["outputs"]
    assert (output["datatype"], output["shape"]) == (spec.datatype, list(array.shape))
    np.testing.assert_array_equal(np.array(output["data"], dtype=array.dtype).reshape(array.shape),
                                  array)
