"""Portable bundle files: what ``export`` writes imports unchanged, and anything altered,
unsafe, oversized or signed by an untrusted key is refused."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from threadline.adapters.signing import Ed25519Signer
from threadline.artifacts import archive
from threadline.bundles import document, portable
from threadline.domain import errors

MODEL_BYTES = b"pretend these are skops bytes" * 100
MODEL_DIGEST = hashlib.sha256(MODEL_BYTES).hexdigest()


@pytest.fixture(scope="module")
def signer() -> Ed25519Signer:
    return Ed25519Signer(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture
def signed(signer: Ed25519Signer) -> document.SignedBundle:
    bundle = document.Bundle(
        id="pred-1", created=datetime(2024, 5, 1, tzinfo=UTC), deployment="fraud",
        reason="requested", model="fraud", version=3, artifact_digest=MODEL_DIGEST,
        artifact_format="skops", signature={}, lineage={}, request={"inputs": []},
        inputs={"input-0": [1.0, 2.0]},
        steps=[{"step": "m", "kind": "predict", "output": {"prediction": 0.5}}],
        outputs={"prediction": 0.5}, confidence=None)
    return document.sign(bundle, signer)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.skops"
    path.write_bytes(MODEL_BYTES)
    return path


@pytest.fixture
def exported(tmp_path: Path, signed: document.SignedBundle, signer: Ed25519Signer,
             model_file: Path) -> Path:
    return portable.export(signed, signer.public_pem(), tmp_path / "out" / "case.tar", model_file)


def _trusted(signer: Ed25519Signer) -> dict[str, str]:
    return {signer.key_id: signer.public_pem()}


def _rewrite(path: Path, edit: Callable[[Path], object]) -> Path:
    """Unpack ``path``, let ``edit`` change the folder, and pack it back in place."""
    folder = path.parent / "edit"
    archive.extract(path, folder)
    edit(folder)
    archive.pack_directory(folder, path)
    return path


def _open(path: Path, tmp_path: Path, signer: Ed25519Signer, **options: int) -> portable.Imported:
    return portable.open_archive(path, tmp_path / "work", trusted_keys=_trusted(signer), **options)


def test_round_trip_with_model(exported: Path, tmp_path: Path, signed: document.SignedBundle,
                               signer: Ed25519Signer) -> None:
    with _open(exported, tmp_path, signer) as imported:
        assert imported.signed == signed
        assert imported.model_path is not None
        assert imported.model_path.read_bytes() == MODEL_BYTES
        scratch = imported.scratch
        assert scratch.is_relative_to(tmp_path / "work")
    assert not scratch.exists()


def test_round_trip_without_model_and_export_is_deterministic(
        tmp_path: Path, signed: document.SignedBundle, signer: Ed25519Signer) -> None:
    first = portable.export(signed, signer.public_pem(), tmp_path / "a.tar")
    second = portable.export(signed, signer.public_pem(), tmp_path / "b.tar")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        assert sorted(tar.getnames()) == ["bundle.json", "manifest.json"]
        manifest = orjson.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["format"] == portable.ARCHIVE_FORMAT
    assert manifest["model"] is None
    assert manifest["signature"] == {"key_id": signer.key_id, "value": signed.signature}
    with _open(first, tmp_path, signer) as imported:
        assert imported.signed == signed and imported.model_path is None
    # Nothing left over: no temporaries beside the files, no scratch folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "b.tar", "work"]
    assert list((tmp_path / "work").iterdir()) == []


def test_export_checks_the_model_and_the_key(tmp_path: Path, signed: document.SignedBundle,
                                             signer: Ed25519Signer) -> None:
    wrong = tmp_path / "other.skops"
    wrong.write_bytes(b"another model")
    with pytest.raises(errors.InvalidInput, match="but the bundle references"):
        portable.export(signed, signer.public_pem(), tmp_path / "x.tar", wrong)
    other = Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(errors.InvalidInput, match="public_pem"):
        portable.export(signed, other.public_pem(), tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.skops"]  # no temporaries left


def test_changed_bundle_bytes_are_refused(exported: Path, tmp_path: Path,
                                          signer: Ed25519Signer) -> None:
    def edit(folder: Path) -> None:
        data = (folder / "bundle.json").read_bytes()
        (folder / "bundle.json").write_bytes(data.replace(b'"requested"', b'"REQUESTED"'))

    with pytest.raises(errors.PolicyViolation, match="tampered: bundle.json does not match"):
        _open(_rewrite(exported, edit), tmp_path, signer)
    assert list((tmp_path / "work").iterdir()) == []  # the scratch folder is gone


def test_changed_bundle_with_a_fixed_up_manifest_fails_the_signature(
        exported: Path, tmp_path: Path, signer: Ed25519Signer) -> None:
    def edit(folder: Path) -> None:
        data = (folder / "bundle.json").read_bytes().replace(b'"requested"', b'"REQUESTED"')
        (folder / "bundle.json").write_bytes(data)
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
        manifest["bundle"]["sha256"] = hashlib.sha256(data).hexdigest()
        (folder / "manifest.json").write_bytes(orjson.dumps(manifest))

    with pytest.raises(errors.PolicyViolation, match="does not match its content"):
        _open(_rewrite(exported, edit), tmp_path, signer)


def test_non_canonical_bundle_bytes_are_refused(exported: Path, tmp_path: Path,
                                                signer: Ed25519Signer) -> None:
    def edit(folder: Path) -> None:
        content = orjson.loads((folder / "bundle.json").read_bytes())
        data = orjson.dumps(content, option=orjson.OPT_INDENT_2)
        (folder / "bundle.json").write_bytes(data)
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
        manifest["bundle"]["sha256"] = hashlib.sha256(data).hexdigest()
        (folder / "manifest.json").write_bytes(orjson.dumps(manifest))

    with pytest.raises(errors.PolicyViolation, match="not in canonical form"):
        _open(_rewrite(exported, edit), tmp_path, signer)


def test_a_swapped_model_is_refused(exported: Path, tmp_path: Path, signer: Ed25519Signer) -> None:
    def edit(folder: Path) -> None:
        (folder / "model" / MODEL_DIGEST).write_bytes(b"x" * len(MODEL_BYTES))

    with pytest.raises(errors.PolicyViolation, match=f"tampered: model/{MODEL_DIGEST} does not"):
        _open(_rewrite(exported, edit), tmp_path, signer)


def test_a_model_other_than_the_signed_artifact_is_refused(
        exported: Path, tmp_path: Path, signer: Ed25519Signer) -> None:
    other = b"another model"
    digest = hashlib.sha256(other).hexdigest()

    def edit(folder: Path) -> None:
        (folder / "model" / MODEL_DIGEST).unlink()
        (folder / "model" / digest).write_bytes(other)
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
        manifest["model"] = {"path": f"model/{digest}", "sha256": digest, "size": len(other)}
        (folder / "manifest.json").write_bytes(orjson.dumps(manifest))

    with pytest.raises(errors.PolicyViolation, match="but the signed bundle references"):
        _open(_rewrite(exported, edit), tmp_path, signer)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: (f / "notes.txt").write_text("hi"), "notes.txt not listed"),
    (lambda f: (f / "model" / MODEL_DIGEST).unlink(), "listed in manifest.json but missing"),
    (lambda f: (f / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda f: (f / "manifest.json").write_bytes(b"[1"), "manifest.json is not JSON"),
    (lambda f: (f / "manifest.json").write_bytes(
        (f / "manifest.json").read_bytes().replace(b"bundle-archive/v1", b"bundle-archive/v9")),
     "manifest.json: format"),
])
def test_manifest_and_members_must_agree(exported: Path, tmp_path: Path, signer: Ed25519Signer,
                                         edit: Callable[[Path], object], message: str) -> None:
    with pytest.raises(errors.PolicyViolation, match=message):
        _open(_rewrite(exported, edit), tmp_path, signer)


def test_untrusted_key_is_refused(exported: Path, tmp_path: Path, signer: Ed25519Signer) -> None:
    other = Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(errors.PolicyViolation, match="not trusted here"):
        _open(exported, tmp_path, other)
    assert list((tmp_path / "work").iterdir()) == []


def test_path_traversal_is_refused(tmp_path: Path, signer: Ed25519Signer) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name, data in (("manifest.json", b"{}"), ("../evil", b"owned")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(errors.InvalidInput, match="'..' components are not allowed"):
        _open(evil, tmp_path, signer)
    assert not (tmp_path / "evil").exists()
    assert list((tmp_path / "work").iterdir()) == []


def test_oversized_archives_and_bundles_are_refused(exported: Path, tmp_path: Path,
                                                    signer: Ed25519Signer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.PayloadTooLarge, match="unpacks to more than 1000 bytes"):
        _open(exported, tmp_path, signer, max_bytes=1000)
    monkeypatch.setattr(portable, "MAX_BUNDLE_BYTES", 100)
    with pytest.raises(errors.PayloadTooLarge, match="bundle.json: is larger than 100 bytes"):
        _open(exported, tmp_path, signer)
    assert list((tmp_path / "work").iterdir()) == []
