"""Control-plane token checks: one lookup per token, stale answers while refreshing."""

from __future__ import annotations

import asyncio

import httpx

from threadline.serving.auth import ControlPlaneTokens


def test_lookups_are_shared_cached_and_refreshed_in_the_background() -> None:
    calls: list[str] = []
    valid = {"tl_good"}

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        calls.append(token)
        return httpx.Response(200, json={"user": "alice"}) if token in valid else httpx.Response(401, json={})

    async def main() -> None:
        tokens = ControlPlaneTokens("http://control", ttl=0.05, negative_ttl=0.05)
        tokens._http = httpx.AsyncClient(base_url="http://control", transport=httpx.MockTransport(handler))
        assert await asyncio.gather(*(tokens.verify("tl_good") for _ in range(10))) == ["alice"] * 10
        assert calls == ["tl_good"]  # ten concurrent requests, one lookup
        assert await tokens.verify("tl_bad") is None
        await asyncio.sleep(0.06)
        valid.clear()  # revoked
        assert await tokens.verify("tl_good") == "alice"  # stale answer while the refresh runs
        await asyncio.sleep(0.01)
        assert await tokens.verify("tl_good") is None  # the refresh saw the revocation
        await tokens.close()

    asyncio.run(main())
