"""The Git source against real repositories made with ``git init`` in a temporary folder.

Covers ref resolution (branch, tag, full and short commit), snapshots that see one commit
only, the files a snapshot leaves out, force-push detection, credential redaction and the
URLs that are refused before git runs at all.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support import git

from threadline.adapters import git_source
from threadline.domain import errors

def _commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def work(tmp_path: Path) -> tuple[Path, str, str]:
    """A working copy: c1 (tagged v1, annotated) then c2 on main, plus an uncommitted edit."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    (work / "link.yaml").symlink_to("deploy/a.yaml")
    first = _commit(work, {
        "deploy/a.yaml": "a: 1\n", "deploy/b.yml": "b: 1\n", "README.md": "# not yaml\n",
        ".github/workflow.yaml": "hidden: true\n", "deploy/.draft.yaml": "hidden: true\n",
        "big.yaml": "x: " + "y" * 200 + "\n",
    }, "first")
    git(work, "tag", "-a", "v1", "-m", "release 1")
    second = _commit(work, {"deploy/a.yaml": "a: 2\n", "deploy/c.yaml": "c: 1\n"}, "second")
    (work / "deploy/a.yaml").write_text("a: uncommitted\n")
    return work, first, second


def _source(url: str | Path, tmp_path: Path, ref: str = "main",
            **limits: int) -> git_source.GitSource:
    return git_source.GitSource(str(url), ref, tmp_path / "cache", timeout=20.0, **limits)


def test_resolve_names_a_branch_a_tag_and_full_or_short_commits(work, tmp_path):
    path, first, second = work
    source = _source(path, tmp_path)
    source.fetch()
    assert source.resolve() == second
    for ref in ("v1", first, first[:8]):
        assert _source(path, tmp_path, ref).resolve() == first


def test_a_snapshot_holds_the_yaml_files_of_its_commit_only(work, tmp_path):
    path, first, second = work
    source = _source(path, tmp_path, max_file_bytes=100)
    source.fetch()

    old = source.snapshot(first)
    assert old.commit == first
    assert old.files == {"deploy/a.yaml": b"a: 1\n", "deploy/b.yml": b"b: 1\n"}
    assert old.problems == ("big.yaml: larger than the limit of 100 bytes",
                            "link.yaml: a symbolic link: not followed")

    new = source.snapshot(second)
    assert list(new.files) == ["deploy/a.yaml", "deploy/b.yml", "deploy/c.yaml"]
    assert new.files["deploy/a.yaml"] == b"a: 2\n"  # the commit, not the uncommitted edit


def test_budgets_over_the_whole_snapshot_refuse_it(work, tmp_path):
    path, _, second = work
    source = _source(path, tmp_path, max_files=2)
    source.fetch()
    with pytest.raises(errors.PayloadTooLarge, match="4 YAML files, over the limit of 2"):
        source.snapshot(second)
    with pytest.raises(errors.PayloadTooLarge, match="over the limit of 10"):
        _source(path, tmp_path, max_total_bytes=10).snapshot(second)


def test_a_force_pushed_branch_is_followed_and_detected(work, tmp_path):
    path, first, second = work
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(path, "push", "-q", str(bare), "main")
    source = _source(bare.as_uri(), tmp_path)  # file:// into a bare repository
    source.fetch()
    assert source.resolve() == second
    assert source.is_ancestor(first, second)

    git(path, "commit", "-q", "--amend", "-m", "second, rewritten")
    git(path, "push", "-q", "--force", str(bare), "main")
    source.fetch()
    rewritten = source.resolve()
    assert rewritten != second
    assert not source.is_ancestor(second, rewritten)
    assert source.is_ancestor(first, rewritten)
    assert source.snapshot(second).files["deploy/a.yaml"] == b"a: 2\n"  # still readable until gc
    assert not source.is_ancestor("0" * 40, rewritten)  # an old commit that is gone


def test_an_unknown_ref_names_the_branches(work, tmp_path):
    path, _, _ = work
    git(path, "branch", "staging")
    source = _source(path, tmp_path, ref="prod")
    source.fetch()
    with pytest.raises(errors.NotFound, match=r"'prod' .*branches: main, staging"):
        source.resolve()
    with pytest.raises(errors.NotFound):
        source.snapshot("f" * 40)


def test_credentials_never_reach_messages_logs_or_repr(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    source = _source("https://user:s3cret@127.0.0.1:9/org/repo.git", tmp_path)
    assert source.redacted_url == "https://***@127.0.0.1:9/org/repo.git"
    assert "s3cret" not in repr(source)
    with pytest.raises(errors.ConfigurationError) as caught:
        source.fetch()
    assert "https://***@127.0.0.1:9/org/repo.git" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "s3cret" not in caplog.text
    # git may echo the URL it was given; whatever it prints is scrubbed
    said = "fatal: unable to access 'https://user:s3cret@127.0.0.1:9/org/repo.git/': s3cret"
    redacted = "fatal: unable to access 'https://***@127.0.0.1:9/org/repo.git/': ***"
    assert source._scrub(said) == redacted


def test_a_token_as_the_user_part_is_hidden_too(tmp_path):
    source = _source("https://ghp_T0KEN@example.com/org/repo.git", tmp_path)
    assert source.redacted_url == "https://***@example.com/org/repo.git"
    assert "ghp_T0KEN" not in repr(source) and "ghp_T0KEN" not in source._scrub("x ghp_T0KEN")


@pytest.mark.parametrize("url", [
    "ext::sh -c touch% {marker}", "http://example.com/repo.git", "ftp://example.com/repo.git",
    "ssh://-oProxyCommand=touch% {marker}/repo", "-oProxyCommand=x:repo", "fd::3",
])
def test_other_transports_are_refused_before_anything_runs(url, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(errors.InvalidInput, match="use a local path, file://, https://, ssh://"):
        _source(url.format(marker=marker), tmp_path)
    assert not marker.exists()
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("ref", ["main~1", "-x", "a..b", "HEAD@{1}", "a b", ""])
def test_refs_with_revision_syntax_are_refused(ref, tmp_path):
    with pytest.raises(errors.InvalidInput, match="ref:"):
        _source(tmp_path, tmp_path, ref=ref)


def test_a_folder_that_is_not_a_repository_is_a_clear_error(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(errors.ConfigurationError, match=r"cannot fetch .*plain.*not .* a git repo"):
        _source(tmp_path / "plain", tmp_path).fetch()


def test_a_missing_git_says_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(errors.ConfigurationError, match="install git"):
        _source(tmp_path, tmp_path).fetch()
