"""The quickstart's control plane: what ``threadline up`` runs, in a thread of this process.

In-process rather than a child so that whatever ends the quickstart (the end of a
``--no-serve`` run, Ctrl-C at any point, an error) ends the control plane through one
``finally``: uvicorn shuts down gracefully, letting a sync in flight finish, and the lifespan
stops the GitOps agent together with the serving processes its local runtime started. Those
run in sessions of their own, so a Ctrl-C in the terminal never reaches them: only this stop
does, and it waits until they are gone. A run that was killed outright (SIGKILL) cannot stop
them; the next run finds them in the runtime's state and stops them before it starts (they
would still be calling the old run's port).

The configuration is the embedded default, spelled out: SQLite, artifacts and the prediction
log in the home, the local runtime, the home's deployments repository.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from threadline.domain import errors
from threadline.quickstart.home import Home
from threadline.quickstart.repository import ENVIRONMENT

if TYPE_CHECKING:
    import uvicorn

    from threadline.bootstrap import Services

HOST = "127.0.0.1"
GITOPS_INTERVAL = 2.0      # seconds between agent passes; less than the health period of the spec
STARTUP_TIMEOUT = 60.0
SHUTDOWN_GRACE = 90        # seconds for requests in flight (a sync waits up to 60 s for readiness)


class Plane:
    """Start with ``start``; ``stop`` is safe to call at any point, and more than once."""

    def __init__(self, home: Home, listener: socket.socket) -> None:
        self._home, self._listener = home, listener
        self.port = int(listener.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._services: Services | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def started(self) -> bool:
        """Whether ``start`` got far enough that ``stop`` has something to stop."""
        return self._services is not None or self._thread is not None

    def start(self) -> None:
        import uvicorn

        from threadline.api.app import create_app

        _log_to(self._home)
        services = self._build()
        config = uvicorn.Config(create_app(services), log_config=None, log_level="warning",
                                access_log=False, server_header=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._listener]},
                                        name="control-plane", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise errors.ConfigurationError(
                    f"the control plane did not start; see {self._home.log_path}")
            time.sleep(0.05)

    def _build(self) -> Services:
        """What ``threadline up`` builds, with the embedded default spelled out."""
        from threadline import bootstrap
        from threadline.settings import Settings

        settings = Settings(home=self._home.root, host=HOST, port=self.port, database_url=None,
                            artifacts_url=None, prediction_log_url=None,
                            gitops_repo=str(self._home.repository), gitops_ref="main",
                            gitops_environment=ENVIRONMENT, gitops_interval=GITOPS_INTERVAL,
                            gitops_runtime="local")
        services = self._services = bootstrap.build(settings)
        bootstrap.prepare_control_plane(services)
        assert services.gitops is not None  # a repository is configured
        services.gitops.runtime.stop_all()  # a killed run's serving processes (module docstring)
        services.gitops.stop_workloads_on_exit = True
        return services

    def wait(self) -> None:
        """Block until the server ends (it does not, by itself): Ctrl-C interrupts the wait."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Graceful shutdown: requests in flight finish, then the agent and the workloads stop."""
        if self._thread is not None and self._server is not None:
            self._server.should_exit = True
            if self._thread.is_alive():
                self._thread.join()
            self._thread = None
        self._listener.close()  # the server closed it if it ran; this one is for when it did not
        if self._services is not None:
            services, self._services = self._services, None
            if services.gitops is not None:  # a no-op after the lifespan stopped it
                services.gitops.stop(stop_workloads=True)
            services.close()


def listen(port: int) -> socket.socket:
    """Bind the port now, so a taken one is a clear error before anything else happens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise errors.Conflict(f"port {port} on {HOST} is taken (another `threadline up` or "
                                  "quickstart?): choose a free one with --port") from None
        raise errors.ConfigurationError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None
    return sock


def _log_to(home: Home) -> None:
    """The control plane's log goes to a file: the terminal shows the quickstart's progress."""
    home.log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(home.log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
