"""Bundle documents: one content gives one byte string, signatures catch any change, and a
malformed bundle is refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from threadline.adapters.signing import Ed25519Signer
from threadline.bundles import document
from threadline.domain import errors

CREATED = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
STEPS: list[dict[str, Any]] = [
    {"step": "scale", "kind": "transform", "output": [0.5, -1.25]},
    {"step": "forest.trees", "kind": "trees", "output": {"n": 10, "votes": {"ham": 3, "spam": 7}}},
    {"step": "forest", "kind": "predict", "output": {"probabilities": [0.3, 0.7], "label": "spam"}},
]


def _fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": "pred-1", "created": CREATED, "deployment": "fraud", "environment": "prod",
        "git_commit": "0" * 40, "queue": "fraud-review", "reason": "confidence 0.41 below 0.6",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "model": "fraud", "version": 3,
        "artifact_digest": "ab" * 32, "artifact_format": "skops",
        "signature": {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}]},
        "lineage": {"run": "r-17", "data": [{"uri": "s3://d/train.parquet"}]},
        "request": {"inputs": [{"name": "input-0", "data": [[1, 2]]}]},
        "inputs": {"input-0": [1.0, 2.0]}, "steps": STEPS,
        "outputs": {"label": "spam", "probabilities": [0.3, 0.7]}, "confidence": 0.7,
    }
    return {**fields, **changes}


def _bundle(**changes: Any) -> document.Bundle:
    return document.Bundle(**_fields(**changes))


@pytest.fixture(scope="module")
def signer() -> Ed25519Signer:
    return Ed25519Signer(ed25519.Ed25519PrivateKey.generate())


def test_canonical_bytes_are_stable_and_round_trip() -> None:
    bundle = _bundle()
    data = document.canonical(bundle)
    assert data == document.canonical(_bundle())
    assert document.canonical(document.parse(data)) == data
    assert document.parse(data) == bundle
    assert document.digest(bundle) == document.digest(document.parse(data))
    assert b'"created":"2024-05-01T12:30:15.123456+00:00"' in data


def test_canonical_bytes_ignore_key_order_and_time_zone() -> None:
    reordered = dict(reversed(list(_fields(lineage={"b": 1, "a": 2}).items())))
    eastern = CREATED.astimezone(timezone(timedelta(hours=2)))
    assert document.canonical(document.Bundle(**reordered)) == \
        document.canonical(_bundle(lineage={"a": 2, "b": 1}, created=eastern))


def test_nan_is_stored_as_null_with_the_same_digest() -> None:
    bundle = _bundle(inputs={"input-0": [float("nan"), 2.0]})
    parsed = document.parse(document.canonical(bundle))
    assert parsed.inputs == {"input-0": [None, 2.0]}
    assert document.digest(parsed) == document.digest(bundle)


def test_bundles_are_frozen_and_refuse_unknown_fields() -> None:
    with pytest.raises(Exception, match="frozen"):
        _bundle().reason = "changed"
    with pytest.raises(Exception, match="extra"):
        _bundle(surprise=1)


def test_signed_bundle_verifies_with_pem_or_key(signer: Ed25519Signer) -> None:
    signed = document.sign(_bundle(), signer)
    assert signed.key_id == signer.key_id
    document.verify(signed, {signer.key_id: signer.public_pem()})
    key = serialization.load_pem_public_key(signer.public_pem().encode())
    assert isinstance(key, ed25519.Ed25519PublicKey)
    document.verify(signed, {signer.key_id: key})


@pytest.mark.parametrize("changes", [
    {"reason": "requested"},
    {"version": 4},
    {"steps": [*STEPS[:2], {**STEPS[2], "output": {"probabilities": [0.3, 0.7], "label": "ham"}}]},
    {"outputs": {"label": "spam", "probabilities": [0.30000000000000004, 0.7]}},
])
def test_a_changed_field_fails_verification(signer: Ed25519Signer, changes: dict[str, Any]) -> None:
    signed = document.sign(_bundle(), signer)
    tampered = document.SignedBundle(signed.bundle.model_copy(update=changes), signed.signature,
                                     signed.key_id)
    with pytest.raises(errors.PolicyViolation, match="does not match its content"):
        document.verify(tampered, {signer.key_id: signer.public_pem()})


def test_unknown_key_and_malformed_signature_fail(signer: Ed25519Signer) -> None:
    signed = document.sign(_bundle(), signer)
    other = Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(errors.PolicyViolation, match=f"key {signer.key_id}, which is not trusted"):
        document.verify(signed, {other.key_id: other.public_pem()})
    with pytest.raises(errors.PolicyViolation, match="does not match"):  # trusted id, other key
        document.verify(signed, {signer.key_id: other.public_pem()})
    garbled = document.SignedBundle(signed.bundle, "not hex", signed.key_id)
    with pytest.raises(errors.PolicyViolation, match="does not match"):
        document.verify(garbled, {signer.key_id: signer.public_pem()})


def test_key_id_of_matches_the_signer(signer: Ed25519Signer) -> None:
    assert document.key_id_of(signer.public_pem()) == signer.key_id
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(errors.InvalidInput, match="not an Ed25519 public key"):
        document.key_id_of(ec_pem)
    with pytest.raises(errors.InvalidInput, match="not a PEM public key"):
        document.key_id_of("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def _edited(edit: Any) -> bytes:
    data = orjson.loads(document.canonical(_bundle()))
    edit(data)
    return orjson.dumps(data)


@pytest.mark.parametrize(("edit", "field", "message"), [
    (lambda d: d["steps"][2].pop("output"), "steps[2].output", "required, but missing"),
    (lambda d: d["steps"][1].update(kind="guess"), "steps[1].kind", "'transform', 'member'"),
    (lambda d: d["steps"][0].update(extra=1), "steps[0].extra", "unknown field"),
    (lambda d: d.update(version="3"), "version", "valid integer"),
    (lambda d: d.update(created="2024-05-01T12:30:15"), "created", "timezone"),
    (lambda d: d.update(format="threadline.bundle/v2"), "format", "threadline.bundle/v1"),
    (lambda d: d.update(artifact_digest="sha256:ab"), "artifact_digest", "pattern"),
])
def test_parse_names_the_wrong_field(edit: Any, field: str, message: str) -> None:
    with pytest.raises(errors.InvalidInput, match=message) as caught:
        document.parse(_edited(edit))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_parse_refuses_what_is_not_json() -> None:
    with pytest.raises(errors.InvalidInput, match="invalid JSON") as caught:
        document.parse(b"{not json")
    assert caught.value.field == "bundle"
