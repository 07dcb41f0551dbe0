"""One portable file per bundle, to move a review case (and its model) between installations.

The file is a deterministic tar (``artifacts.archive``) holding::

    manifest.json      format, the digest of bundle.json, the signature, the signer's public
                       key, and the model member if any
    bundle.json        the canonical bytes of the bundle (what was signed)
    model/<sha256>     optionally, the model artifact the bundle references

An imported file comes from outside, so ``open_archive`` trusts nothing in it: ``extract``
refuses members that escape the folder, links and oversized archives; then every member must
be exactly the ones the manifest lists, with the digests it gives; ``bundle.json`` must be
canonical; the signature must verify against a key the *importer* trusts (the public key in
the manifest only tells the importer which key to ask about); and the model must be the very
artifact the signed bundle names. Any mismatch is reported as "tampered", because a file
written by ``export`` never has one.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Annotated, Final, Literal, Self

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from threadline import files
from threadline.artifacts import archive
from threadline.bundles import document
from threadline.domain import errors

ARCHIVE_FORMAT: Final = "threadline.bundle-archive/v1"
MANIFEST = "manifest.json"
BUNDLE: Final = "bundle.json"
MODEL_FOLDER = "model"

MAX_MANIFEST_BYTES = 64 << 10  # a manifest holds a few digests and one PEM key
MAX_BUNDLE_BYTES = 16 << 20
MAX_MEMBERS = 8  # manifest, bundle, the model folder and file, and a root entry at most

_Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _BundleMember(_Part):
    path: Literal["bundle.json"]
    sha256: _Digest


class _SignatureMember(_Part):
    key_id: str
    value: str


class _ModelMember(_Part):
    path: str
    sha256: _Digest
    size: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _named_by_digest(self) -> _ModelMember:
        if self.path != f"{MODEL_FOLDER}/{self.sha256}":
            raise ValueError(f"the model must be stored as {MODEL_FOLDER}/<its sha256>")
        return self


class _Manifest(_Part):
    format: Literal["threadline.bundle-archive/v1"]
    bundle: _BundleMember
    signature: _SignatureMember
    public_key: str  # informational: trust comes from the importer's own key list
    model: _ModelMember | None


@dataclass(frozen=True)
class Imported:
    """A verified bundle and its model, unpacked in ``scratch``; close it (or use ``with``)
    to remove the scratch folder, which holds the model."""

    signed: document.SignedBundle
    model_path: Path | None
    scratch: Path

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def export(signed: document.SignedBundle, public_pem: str, dest: Path,
           model_file: Path | None = None) -> Path:
    """Write the bundle (and ``model_file``, the artifact it references) as one file at
    ``dest``, atomically; return ``dest``.

    The signature is checked against ``public_pem`` first, so a file that would be refused on
    import is never written.
    """
    if document.key_id_of(public_pem) != signed.key_id:
        raise errors.InvalidInput(f"is not the key {signed.key_id} that signed the bundle",
                                  field="public_pem")
    document.verify(signed, {signed.key_id: public_pem})
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".export"))
    try:
        content = document.canonical(signed.bundle)
        (folder / BUNDLE).write_bytes(content)
        model = None
        if model_file is not None:
            model = _copy_model(Path(model_file), folder, signed.bundle.artifact_digest)
        manifest = _Manifest(
            format=ARCHIVE_FORMAT,
            bundle=_BundleMember(path=BUNDLE, sha256=hashlib.sha256(content).hexdigest()),
            signature=_SignatureMember(key_id=signed.key_id, value=signed.signature),
            public_key=public_pem,
            model=model,
        )
        options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
        (folder / MANIFEST).write_bytes(orjson.dumps(manifest.model_dump(mode="json"),
                                                     option=options))
        archive.pack_directory(folder, dest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return dest


def open_archive(path: Path, workdir: Path, *, trusted_keys: Mapping[str, str],
                 max_bytes: int = 4 << 30) -> Imported:
    """Unpack and verify the file at ``path`` in a new folder under ``workdir``.

    ``trusted_keys`` maps key ids to PEM public keys; ``max_bytes`` bounds what the file may
    unpack to. Refusals: InvalidInput for a damaged or unsafe archive (PayloadTooLarge when too
    big), PolicyViolation for anything tampered with or signed by a key not trusted here.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=workdir, prefix="bundle-"))
    try:
        folder = scratch / "archive"
        archive.extract(Path(path), folder, max_bytes=max_bytes, max_members=MAX_MEMBERS)
        manifest = _manifest(folder)
        _require_members(folder, manifest)
        content = _read(folder / BUNDLE, MAX_BUNDLE_BYTES)
        if hashlib.sha256(content).hexdigest() != manifest.bundle.sha256:
            raise errors.PolicyViolation(
                f"tampered: {BUNDLE} does not match its digest in {MANIFEST}")
        bundle = document.parse(content)
        if document.canonical(bundle) != content:
            raise errors.PolicyViolation(f"tampered: {BUNDLE} is not in canonical form, so it "
                                         "is not the bytes that were signed")
        signed = document.SignedBundle(bundle, manifest.signature.value, manifest.signature.key_id)
        document.verify(signed, trusted_keys)
        model_path = _check_model(folder, manifest.model, bundle) if manifest.model else None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Imported(signed, model_path, scratch)


def _copy_model(source: Path, folder: Path, expected: str) -> _ModelMember:
    digest, size = files.sha256_file(source)
    if digest != expected:
        raise errors.InvalidInput(f"{source} has sha256 {digest}, but the bundle references "
                                  f"the artifact {expected}", field="model_file")
    (folder / MODEL_FOLDER).mkdir()
    shutil.copyfile(source, folder / MODEL_FOLDER / digest)
    return _ModelMember(path=f"{MODEL_FOLDER}/{digest}", sha256=digest, size=size)


def _manifest(folder: Path) -> _Manifest:
    if not (folder / MANIFEST).is_file():
        raise errors.PolicyViolation(f"tampered: {MANIFEST} is missing")
    try:
        return _Manifest.model_validate(orjson.loads(_read(folder / MANIFEST, MAX_MANIFEST_BYTES)))
    except orjson.JSONDecodeError as exc:
        raise errors.PolicyViolation(f"tampered: {MANIFEST} is not JSON: {exc}") from exc
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise errors.PolicyViolation(f"tampered: {MANIFEST}: {where}: {first['msg']}") from exc


def _require_members(folder: Path, manifest: _Manifest) -> None:
    """Exactly the listed members: anything else in a signed case file is unexplained."""
    expected = {MANIFEST, BUNDLE}
    if manifest.model is not None:
        expected |= {MODEL_FOLDER, manifest.model.path}
    present = {item.relative_to(folder).as_posix() for item in folder.rglob("*")}
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing:
        raise errors.PolicyViolation(
            f"tampered: {', '.join(missing)} listed in {MANIFEST} but missing")
    if extra:
        raise errors.PolicyViolation(f"tampered: {', '.join(extra)} not listed in {MANIFEST}")


def _check_model(folder: Path, member: _ModelMember, bundle: document.Bundle) -> Path:
    if member.sha256 != bundle.artifact_digest:
        raise errors.PolicyViolation(
            f"tampered: the model in the file is sha256 {member.sha256}, but the signed bundle "
            f"references {bundle.artifact_digest}")
    path = folder / member.path
    digest, size = files.sha256_file(path)
    if (digest, size) != (member.sha256, member.size):
        raise errors.PolicyViolation(f"tampered: {member.path} does not match its digest")
    return path


def _read(path: Path, limit: int) -> bytes:
    if not path.is_file():
        raise errors.PolicyViolation(f"tampered: {path.name} is not a file")
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"is larger than {limit} bytes", field=path.name)
    return data
