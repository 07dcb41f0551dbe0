"""Shared fixtures: metadata databases (SQLite and a fresh PostgreSQL database per use),
free ports, and a real control plane started as a subprocess on 127.0.0.1.

PostgreSQL is expected at 127.0.0.1:5432 (override with THREADLINE_TEST_POSTGRES_URL);
``.ci/run`` starts it. Set THREADLINE_TEST_BACKENDS=sqlite to run without it locally.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from support import ControlPlane

POSTGRES_ADMIN_URL = os.environ.get("THREADLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
S3_BUCKET = "threadline-test"
BACKENDS = os.environ.get("THREADLINE_TEST_BACKENDS", "sqlite,postgresql").split(",")


@pytest.fixture(scope="session", autouse=True)
def interruptible_children() -> None:
    """Let tests interrupt their subprocesses as a user's Ctrl-C does.

    A shell that starts the suite in the background (``.ci/run &``) ignores SIGINT, and an
    ignored signal stays ignored in every process started from it, so a SIGINT sent to a child
    would do nothing. Installing Python's own handler here makes children start with the default.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[object]:
    psycopg = pytest.importorskip("psycopg")
    try:
        connection = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}); start it "
                    "(see .ci/run) or set THREADLINE_TEST_BACKENDS=sqlite")
    yield connection
    connection.close()


def _postgres_database(admin: object) -> Iterator[str]:
    name = "tl_test_" + uuid.uuid4().hex[:12]
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]


def _database(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'threadline.db'}"
    else:
        yield from _postgres_database(request.getfixturevalue("postgres_admin"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty metadata database of each backend under test."""
    yield from _database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_plane(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane per backend for a whole test module (tests use their own model names)."""
    folder = tmp_path_factory.mktemp("plane")
    for url in _database(request, folder):
        plane = ControlPlane(home=folder / "home", database_url=url).start()
        try:
            yield plane
        finally:
            plane.stop()


@pytest.fixture(scope="module")
def sqlite_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane on SQLite for a module whose subject never touches the metadata
    database (runtimes, the prediction log), so running it on every backend adds nothing."""
    folder = tmp_path_factory.mktemp("plane")
    plane = ControlPlane(home=folder / "home", database_url=f"sqlite:///{folder / 'db.sqlite'}").start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def control_plane(database_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(home=tmp_path / "home", database_url=database_url).start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with bucket S3_BUCKET; AWS variables point at dummies."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=S3_BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="session")
def iris_model() -> tuple[object, object]:
    """A small fitted classifier and its training frame (features only)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns=["target"])
    features.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in features.columns]
    model = LogisticRegression(max_iter=500).fit(features, frame["target"])
    return model, features
