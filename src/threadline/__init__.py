"""Threadline: a governed model deployment control plane.

``threadline.Client`` is the SDK; everything else is reached through the CLI or the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from threadline.client import Client


def __getattr__(name: str) -> Any:
    # The SDK pulls in httpx and numpy; import it only when asked for.
    if name == "Client":
        from threadline.client import Client

        return Client
    raise AttributeError(name)


__all__ = ["Client", "__version__"]
