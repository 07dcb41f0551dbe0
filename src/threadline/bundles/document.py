"""The context bundle document: one escalated prediction and everything needed to judge it.

A bundle leaves the server (review queues, exported files, other installations) and must still
be believed when it comes back, so it is signed: ``canonical`` gives the one byte string a
bundle's content can have (orjson with sorted keys, the creation time in UTC with its offset),
``sign`` signs those bytes with the server's Ed25519 key, and ``verify`` checks them against
the keys the reader trusts. ``parse`` reads a bundle from JSON and names the field that is
wrong, because a bundle that fails to parse is either damaged or crafted and someone will
want to know where.

Non-finite numbers have no JSON spelling: a NaN or infinity in the recorded values is written
as null, so a parsed bundle holds None where the one in memory held NaN. Both give the same
canonical bytes, hence the same digest and signature.

Everything here is pure: bytes and models in, bytes, models and errors out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal, Protocol

import orjson
import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from threadline.bundles import chain
from threadline.domain import errors
from threadline.gitops import problems

BUNDLE_FORMAT: Final = "threadline.bundle/v1"

PublicKey = ed25519.Ed25519PublicKey | str
"""A trusted key: the key itself, or its PEM (SubjectPublicKeyInfo) text."""


def _utc(value: datetime) -> datetime:
    # One instant, one spelling: otherwise +02:00 and Z would give two digests for one bundle.
    return value.astimezone(UTC)


@pydantic.with_config(ConfigDict(extra="forbid", strict=True))
class StepRecord(TypedDict):
    """One step of a decision chain as ``bundles.chain`` records it (a plain dict)."""

    step: str
    kind: chain.Kind
    output: JsonValue


class Bundle(BaseModel):
    """The bundle's content. Frozen because it is signed: the dicts and lists inside are plain
    JSON containers, to be read and never changed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["threadline.bundle/v1"] = BUNDLE_FORMAT
    id: str  # the prediction's id
    created: Annotated[AwareDatetime, AfterValidator(_utc)]
    deployment: str
    environment: str | None = None
    git_commit: str | None = None
    queue: str | None = None
    reason: str  # why a human is needed: "confidence 0.41 below 0.6", "requested"
    trace_id: str | None = None
    model: str
    version: int
    artifact_digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    artifact_format: str
    signature: dict[str, JsonValue]  # the version's input and output signature
    lineage: dict[str, JsonValue]
    request: dict[str, JsonValue]  # as received, before any conversion
    inputs: dict[str, JsonValue]  # this row of each input tensor, by name
    steps: list[StepRecord]
    outputs: dict[str, JsonValue]  # this row of each output tensor, by name
    confidence: Annotated[float, Field(allow_inf_nan=False)] | None = None


class Signer(Protocol):
    """What signing needs of ``adapters.signing.Ed25519Signer``."""

    key_id: str

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class SignedBundle:
    bundle: Bundle
    signature: str  # hex of the Ed25519 signature of canonical(bundle)
    key_id: str


def canonical(bundle: Bundle) -> bytes:
    """The bytes that are signed and hashed: the same bundle always gives the same bytes."""
    return orjson.dumps(bundle.model_dump(mode="python"), option=orjson.OPT_SORT_KEYS)


def digest(bundle: Bundle) -> str:
    """SHA-256 (bare hex) of the canonical bytes."""
    return hashlib.sha256(canonical(bundle)).hexdigest()


def sign(bundle: Bundle, signer: Signer) -> SignedBundle:
    return SignedBundle(bundle, signer.sign(canonical(bundle)).hex(), signer.key_id)


def verify(signed: SignedBundle, public_keys: Mapping[str, PublicKey]) -> None:
    """Raise PolicyViolation unless a trusted key (by key id) signed exactly this content."""
    trusted = public_keys.get(signed.key_id)
    label = f"bundle {signed.bundle.id}"
    if trusted is None:
        raise errors.PolicyViolation(
            f"{label} is signed with key {signed.key_id}, which is not trusted here: add the "
            "signing server's public key to the trusted bundle keys if you trust it")
    key = _public_key(trusted, field=f"trusted_keys[{signed.key_id}]") \
        if isinstance(trusted, str) else trusted
    try:
        key.verify(bytes.fromhex(signed.signature), canonical(signed.bundle))
    except (ValueError, InvalidSignature):  # ValueError: the signature is not hex
        raise errors.PolicyViolation(
            f"{label}: its signature by key {signed.key_id} does not match its content, which "
            "was changed after signing") from None


def key_id_of(public_pem: str) -> str:
    """The id ``Ed25519Signer.key_id`` gives the key: SHA-256 of its raw bytes, 16 hex."""
    raw = _public_key(public_pem, field="public_key").public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def parse(data: bytes) -> Bundle:
    """A bundle from its JSON, or InvalidInput whose ``field`` is the first wrong path
    (``steps[2].output``) and whose message lists every problem."""
    try:
        return Bundle.model_validate_json(data)
    except pydantic.ValidationError as exc:
        found, omitted = problems.messages(exc, Bundle)
    paths = [problems.path(loc) or "bundle" for loc, _ in found]
    # InvalidInput prefixes the message with "field: ", which is exactly the first line's start.
    lines = [found[0][1], *(f"{where}: {what}" for where, (_, what) in zip(paths[1:], found[1:]))]
    if omitted:
        lines.append(f"bundle: ... and {omitted} more problems")
    raise errors.InvalidInput("\n".join(lines), field=paths[0])


def _public_key(pem: str, *, field: str) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise errors.InvalidInput("is not a PEM public key", field=field) from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise errors.InvalidInput("is not an Ed25519 public key", field=field)
    return key
