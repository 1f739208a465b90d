"""The floor of `fleetroute bench proxy`: a minimal aiohttp pass-through proxy to one backend.

It forwards the body and Content-Type unchanged, answers whole responses in one write and
relays event streams chunk by chunk: no parsing, routing, metrics or tracing. Run it as
`python -m fleetroute_router.bench.minproxy --port PORT --backend HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web


def app(backend: str) -> web.Application:
    """A pass-through application for POST /v1/* to `backend` (plus GET /health)."""
    session: list[aiohttp.ClientSession] = []

    async def start(_: web.Application) -> None:
        session.append(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        )

    async def stop(_: web.Application) -> None:
        await session[0].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        url = f"http://{backend}{request.path}"
        async with session[0].post(url, data=body, headers=headers) as upstream:
            content_type = upstream.headers.get("Content-Type", "")
            if not content_type.startswith("text/event-stream"):
                content = await upstream.read()
                return web.Response(
                    status=upstream.status, body=content, headers={"Content-Type": content_type}
                )
            response = web.StreamResponse(
                status=upstream.status, headers={"Content-Type": content_type}
            )
            await response.prepare(request)
            while chunk := await upstream.content.readany():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.on_startup.append(start)
    application.on_cleanup.append(stop)
    application.router.add_post("/v1/{tail:.*}", forward)
    application.router.add_get("/health", health)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="HOST:PORT of the backend")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.backend))


async def _serve(port: int, backend: str) -> None:
    runner = web.AppRunner(app(backend), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
