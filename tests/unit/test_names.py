from __future__ import annotations

import pytest

from threadline.domain import errors, names


@pytest.mark.parametrize("bad", ["", "..", "../etc", "a/b", "/abs", "a%2Fb", "a#frag", "A", "-a", "a-",
                                 "a b", "a" * 64, "%2e%2e", "a?b", "fraud_model", None, 3])
def test_bad_model_names_are_refused(bad: object) -> None:
    with pytest.raises(errors.InvalidInput, match="name"):
        names.model_name(bad)


@pytest.mark.parametrize("good", ["a", "fraud-model", "m1", "x" * 63])
def test_good_model_names(good: str) -> None:
    assert names.model_name(good) == good


def test_aliases_cannot_look_like_versions_or_latest() -> None:
    with pytest.raises(errors.InvalidInput, match="version number"):
        names.alias_name("7")
    with pytest.raises(errors.InvalidInput, match="reserved"):
        names.alias_name("latest")
    assert names.alias_name("champion") == "champion"


def test_digests() -> None:
    hexd = "a" * 64
    assert names.sha256_digest("sha256:" + hexd) == hexd
    for bad in ["sha256:" + "A" * 64, "abc", "../" + hexd, hexd + "#"]:
        with pytest.raises(errors.InvalidInput):
            names.sha256_digest(bad)


def test_version_refs() -> None:
    assert names.version_ref("m") == ("m", "latest")
    assert names.version_ref("m@3") == ("m", "3")
    assert names.version_ref("m@champion") == ("m", "champion")
    with pytest.raises(errors.InvalidInput):
        names.version_ref("m@")
