"""The Git source of the GitOps agent: a bare mirror of one remote, read one commit at a time.

Each pass fetches, resolves the ref to a commit and reads the YAML files of that commit
from the object store, never from a working tree: what the agent applies is an immutable
snapshot, and the commit id names it in the audit trail. Fetches force-update branches and
tags so that a force-pushed branch is followed; ``is_ancestor`` lets the agent notice and
audit that the history it applied before was rewritten.

The ``git`` command line does the work (no library), under a timeout, with prompts off and
only the protocol of the validated URL allowed, so ``insteadOf`` rewrites or redirects cannot
reach ``ext::`` (which runs commands). Credentials in an https URL never reach git's argv
(which every local user can read in ``ps``): they travel as an ``Authorization`` header in
the environment, and every message git prints is scrubbed of them anyway.

Failures are translated here: no git, an unreachable remote or a timeout is a
``ConfigurationError``; a malformed URL or ref is ``InvalidInput``; an unknown ref or commit
is ``NotFound``; a snapshot over its file-count or byte budget is ``PayloadTooLarge``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from threadline.domain import errors

log = logging.getLogger("threadline.gitops.git")

_ALLOWED = "a local path, file://, https://, ssh:// or scp-style user@host:path"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"^([A-Za-z0-9+.-]+)::")  # <transport>::<address> runs git-remote-<transport>
_HEX = re.compile(r"^[0-9a-f]{7,40}$")  # shorter prefixes collide with branch names too often
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_BAD_REF = re.compile(r"^-|\.\.|@\{|[\x00-\x20\x7f~^:?*\[\\]")  # rev-parse syntax or options
_YAML = (b".yaml", b".yml")
_LISTED_BRANCHES = 10


@dataclass(frozen=True)
class Snapshot:
    """The YAML files of one commit, keyed by repo-relative POSIX path in sorted order.

    ``problems`` holds one line per file that was left out for a reason its author must fix
    (too large, a symbolic link, a name that is not UTF-8): like ``documents.load_tree``, an
    agent must not prune while there are problems, since a left-out file is not a deletion.
    """

    commit: str
    files: dict[str, bytes]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _Remote:
    """A validated URL: what git fetches from, what messages show, and what must never show."""

    fetch_url: str  # without credentials
    redacted: str
    protocol: str  # the one protocol git may use: file, https or ssh
    original: str = field(default="", repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)  # longest first: scrubbed whole
    auth_header: str | None = field(default=None, repr=False)


class GitSource:
    """One remote and ref, mirrored into ``cache_dir``; see the module docstring."""

    def __init__(self, url: str, ref: str, cache_dir: Path, *,
                 max_file_bytes: int = 1 << 20, max_files: int = 10_000,
                 max_total_bytes: int = 64 << 20, timeout: float = 60.0) -> None:
        self._remote = _parse_url(url)
        if not ref or _BAD_REF.search(ref) or ref.endswith(("/", ".lock")):
            raise errors.InvalidInput(f"{ref!r} is not a branch, tag or commit name", field="ref")
        self.ref = ref
        self._limits = (max_file_bytes, max_files, max_total_bytes)
        self._timeout = timeout
        digest = hashlib.sha256(self._remote.fetch_url.encode("utf-8")).hexdigest()
        self._cache_dir = Path(cache_dir)
        self._mirror = self._cache_dir / digest[:32]

    def __repr__(self) -> str:
        return f"GitSource(url={self.redacted_url!r}, ref={self.ref!r})"

    @property
    def redacted_url(self) -> str:
        """The URL with any credentials replaced by ``***``: safe for messages and logs."""
        return self._remote.redacted

    def fetch(self) -> None:
        """Bring the mirror up to date with every branch and tag of the remote.

        Forced refspecs follow force pushes and moved tags; ``--prune`` forgets deleted ones,
        so a deleted branch resolves to NotFound instead of a stale commit.
        """
        self._ensure_mirror()
        protocol = self._remote.protocol
        only = ["-c", "protocol.allow=never", "-c", f"protocol.{protocol}.allow=always"]
        code, _, err = self._git(*only, "fetch", "--prune", "--force", "--quiet", "--no-tags",
                                 self._remote.fetch_url, "+refs/heads/*:refs/heads/*",
                                 "+refs/tags/*:refs/tags/*", auth=True)
        if code != 0:
            raise errors.ConfigurationError(
                f"cannot fetch {self.redacted_url}: {self._first_line(err)}")
        log.debug("fetched %s", self.redacted_url)

    def resolve(self) -> str:
        """The full commit id the ref names in the mirror now: a commit id, a branch, a tag."""
        self._ensure_mirror()
        by_id: list[str] = []
        if _HEX.match(self.ref):  # every object id starting so; only commits count below
            code, out, _ = self._git("rev-parse", f"--disambiguate={self.ref}")
            by_id = out.decode().split() if code == 0 else []
        names = [*by_id, f"refs/heads/{self.ref}^{{commit}}", f"refs/tags/{self.ref}^{{commit}}"]
        out = self._read("cat-file", "--batch-check", stdin="".join(f"{n}\n" for n in names))
        found = [line.split() for line in out.decode().splitlines()]  # id type size | name missing
        commits = [fields[0] for fields in found if fields[1:2] == ["commit"]]
        if len([fields for fields in found[:len(by_id)] if fields[1:2] == ["commit"]]) > 1:
            raise errors.InvalidInput(
                f"{self.ref!r} starts more than one commit id: give more digits", field="ref")
        if commits:
            return commits[0]
        raise errors.NotFound(f"ref {self.ref!r} is no commit, branch or tag of "
                              f"{self.redacted_url}; branches: {self._branches()}")

    def snapshot(self, commit: str) -> Snapshot:
        """The ``*.yaml``/``*.yml`` files of exactly ``commit``, read from the object store.

        A file over ``max_file_bytes`` becomes a problem so that one bad file does not hide the
        others; more files or bytes than the budget refuse the whole snapshot, since a partial
        one would look like deletions. Sizes come from the tree listing, so nothing over a
        limit is ever read.
        """
        max_file_bytes, max_files, max_total_bytes = self._limits
        _check_commit(commit)
        self._ensure_mirror()
        code, out, err = self._git("ls-tree", "-r", "-z", "--long", "--full-tree",
                                   f"{commit}^{{commit}}")
        if code != 0:
            raise errors.NotFound(f"commit {commit} is not in the mirror of {self.redacted_url}: "
                                  f"{self._first_line(err)}")
        wanted, sizes, problems = _select(out, max_file_bytes)
        if len(wanted) > max_files:
            raise errors.PayloadTooLarge(f"commit {commit} has {len(wanted)} YAML files, "
                                         f"over the limit of {max_files}")
        if sum(sizes) > max_total_bytes:
            raise errors.PayloadTooLarge(f"the YAML files of commit {commit} hold {sum(sizes)} "
                                         f"bytes, over the limit of {max_total_bytes}")
        blobs = self._read_blobs(sorted(set(wanted.values())))
        files = {path: blobs[wanted[path]] for path in sorted(wanted)}
        return Snapshot(commit, files, tuple(problems))

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether ``new`` descends from ``old``; False means history was rewritten (force push).

        The old commit may be gone from the mirror (never fetched, or garbage collected): that
        is False too. A ``new`` that is not in the mirror is NotFound.
        """
        _check_commit(old)
        _check_commit(new)
        self._ensure_mirror()
        code, _, _ = self._git("merge-base", "--is-ancestor", old, new)
        if code in (0, 1):
            return code == 0
        code, _, _ = self._git("cat-file", "-e", f"{new}^{{commit}}")
        if code != 0:
            raise errors.NotFound(f"commit {new} is not in the mirror of {self.redacted_url}")
        return False

    def _read_blobs(self, blobs: list[str]) -> dict[str, bytes]:
        """Blob contents by id, from one ``cat-file --batch`` (header, content, newline each)."""
        if not blobs:
            return {}
        out = self._read("cat-file", "--batch", stdin="".join(f"{b}\n" for b in blobs))
        contents: dict[str, bytes] = {}
        at = 0
        for blob in blobs:
            end = out.index(b"\n", at)
            header = out[at:end].split()
            if header[1:2] != [b"blob"]:
                raise errors.IntegrityError(
                    f"object {blob} of {self.redacted_url} is missing from the mirror")
            size = int(header[2])
            contents[blob] = out[end + 1:end + 1 + size]
            at = end + 1 + size + 1
        return contents

    def _branches(self) -> str:
        code, out, _ = self._git("for-each-ref", f"--count={_LISTED_BRANCHES + 1}",
                                 "--format=%(refname:lstrip=2)", "refs/heads/")
        names = out.decode("utf-8", "replace").split() if code == 0 else []
        if not names:
            return "none (was the mirror fetched?)"
        more = ", …" if len(names) > _LISTED_BRANCHES else ""
        return ", ".join(names[:_LISTED_BRANCHES]) + more

    def _read(self, *args: str, stdin: str) -> bytes:
        """The output of a git command that reads the mirror and has no reason to fail."""
        code, out, err = self._git(*args, stdin=stdin.encode())
        if code != 0:
            raise errors.ConfigurationError(
                f"cannot read the mirror of {self.redacted_url}: {self._first_line(err)}")
        return out

    def _ensure_mirror(self) -> None:
        """Create the bare mirror on first use, built aside and renamed: never half made."""
        if (self._mirror / "HEAD").exists():
            return
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=self._cache_dir))
        try:
            code, _, err = self._git("init", "--bare", "--quiet", "--template=", str(building),
                                     git_dir=False)  # no template: no sample hooks to copy
            if code != 0:
                raise errors.ConfigurationError(
                    f"cannot create a Git mirror in {building}: {self._first_line(err)}")
            try:
                building.rename(self._mirror)
            except OSError:
                if not (self._mirror / "HEAD").exists():  # else another process made it first
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def _git(self, *args: str, stdin: bytes | None = None, auth: bool = False,
             git_dir: bool = True) -> tuple[int, bytes, bytes]:
        """Run git on the mirror under the timeout; its own session, so a timeout kills ssh too."""
        command = ["git", *(["--git-dir", str(self._mirror)] if git_dir else []), *args]
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(auth),
                start_new_session=True)
        except FileNotFoundError:
            raise errors.ConfigurationError(
                "the git command is not installed or not on PATH: install git "
                "(e.g. apt-get install git) to use a Git source") from None
        try:
            out, err = process.communicate(stdin, timeout=self._timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise errors.ConfigurationError(f"git {_verb(args)} for {self.redacted_url} took "
                                            f"longer than {self._timeout:g} s") from None
        return process.returncode, out, err

    def _env(self, auth: bool) -> dict[str, str]:
        """The caller's environment with prompts off, system config ignored and English messages."""
        env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
        if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        if auth and self._remote.auth_header:
            count = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
            env[f"GIT_CONFIG_KEY_{count}"] = "http.extraHeader"
            env[f"GIT_CONFIG_VALUE_{count}"] = self._remote.auth_header
            env["GIT_CONFIG_COUNT"] = str(count + 1)
        return env

    def _first_line(self, stderr: bytes) -> str:
        """git's reason, scrubbed: the first fatal/error line, else the first line at all."""
        text = self._scrub(stderr.decode("utf-8", "replace"))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        reasons = [line for line in lines if line.startswith(("fatal:", "error:"))]
        return (reasons or lines or ["git gave no reason"])[0]

    def _scrub(self, text: str) -> str:
        """Replace the credentialed URL by its redacted form, then any secret left anywhere."""
        if self._remote.secrets:
            text = text.replace(self._remote.original, self._remote.redacted)
        for secret in self._remote.secrets:
            text = text.replace(secret, "***")
        return text


_REPOSITORY_VARIABLES = frozenset({  # set by a calling git hook, they would redirect our commands
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_CONFIG_PARAMETERS",
})


def _check_commit(commit: str) -> None:
    if not _COMMIT.match(commit):
        raise errors.InvalidInput(f"{commit!r} is not a full 40-hex commit id", field="commit")


def _select(listing: bytes, max_file_bytes: int
            ) -> tuple[dict[str, str], list[int], list[str]]:
    """From ``ls-tree -r -z --long`` output: the YAML blobs to read (path -> id), their sizes,
    and the problems. Hidden files and folders are skipped like ``documents.yaml_files`` does;
    a symbolic link is reported, not followed (it could point outside the commit); a submodule
    (mode 160000) is another repository's commit, not a file."""
    wanted: dict[str, str] = {}
    sizes: list[int] = []
    problems: list[str] = []
    for entry in filter(None, listing.split(b"\0")):
        meta, _, raw = entry.partition(b"\t")
        mode, _, blob, size = meta.decode().split(maxsplit=3)
        if not raw.endswith(_YAML) or any(part.startswith(b".") for part in raw.split(b"/")):
            continue
        path = raw.decode("utf-8", "replace")
        if path.encode("utf-8") != raw:
            problems.append(f"{path}: a file name that is not UTF-8: skipped")
        elif mode == "120000":
            problems.append(f"{path}: a symbolic link: not followed")
        elif mode in ("100644", "100755"):
            if int(size) > max_file_bytes:
                problems.append(f"{path}: larger than the limit of {max_file_bytes} bytes")
            else:
                wanted[path] = blob
                sizes.append(int(size))
    return wanted, sizes, problems


def _verb(args: tuple[str, ...]) -> str:
    """The git subcommand among leading ``-c key=value`` pairs, for timeout messages."""
    rest = list(args)
    while rest[:1] == ["-c"]:
        rest = rest[2:]
    return rest[0] if rest else "git"


def _parse_url(url: str) -> _Remote:
    """Validate a remote URL and split off its credentials; refusals never repeat the URL."""
    if helper := _HELPER.match(url):
        raise errors.InvalidInput(f"the transport {helper.group(1)}:: is not allowed; "
                                  f"use {_ALLOWED}", field="url")
    if not url or url != url.strip() or any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise errors.InvalidInput(f"empty, padded or with control characters; use {_ALLOWED}",
                                  field="url")
    if scheme_match := _SCHEME.match(url):
        scheme = scheme_match.group(1).lower()
        if scheme not in ("file", "https", "ssh"):
            raise errors.InvalidInput(f"the scheme {scheme}:// is not allowed; use {_ALLOWED}",
                                      field="url")
        return _scheme_url(url, scheme)
    head = url.split("/", 1)[0]
    if ":" in head:  # git reads a colon before the first slash as scp-style ssh
        host = head.rpartition("@")[2].split(":", 1)[0]
        if not host or host.startswith("-"):
            raise errors.InvalidInput(f"no valid host before the ':'; use {_ALLOWED}", field="url")
        return _Remote(url, url, "ssh")
    path = os.path.abspath(os.path.expanduser(url))  # cwd-independent, and never an option
    return _Remote(path, path, "file")


def _scheme_url(url: str, scheme: str) -> _Remote:
    """The https credentials become a Basic header (base64: no header injection via %0d%0a)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        raise errors.InvalidInput(f"not a valid {scheme}:// URL; use {_ALLOWED}",
                                  field="url") from None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if scheme != "file" and (not hostport or hostport.startswith("-")):
        raise errors.InvalidInput(f"no valid host in the {scheme}:// URL; use {_ALLOWED}",
                                  field="url")
    if not userinfo or scheme == "file":
        return _Remote(url, url, scheme)
    user, colon, password = userinfo.partition(":")
    if scheme == "ssh":
        if colon:
            raise errors.InvalidInput("an ssh:// URL cannot carry a password: use a key "
                                      "(ssh-agent or GIT_SSH_COMMAND)", field="url")
        return _Remote(url, url, scheme)
    bare = parts._replace(netloc=hostport).geturl()
    redacted = parts._replace(netloc=f"***@{hostport}").geturl()
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    # https://user:PASSWORD@host hides the password, https://TOKEN@host the user part
    hidden = (password, unquote(password)) if colon else (user, unquote(user))
    secrets = {url, userinfo, unquote(userinfo), token, *hidden}
    ordered = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
    return _Remote(bare, redacted, scheme, url, ordered, f"Authorization: Basic {token}")
