"""The portal JSON API: ``GET /queries`` lists the queries, ``GET /queries/<name>?university=&limit=``
runs one (both need ``Authorization: Bearer <ALLIANCE_HTTP_TOKEN>``, core.http_auth); ``/healthz`` checks
the database.

The live fair board: ``GET /fairs/<fair id>`` is the page (no data in it); it reads
``GET /fairs/<fair id>/stream`` (server-sent events, token required) with the token it was given in the
URL's fragment (``#token=...``: a fragment never reaches a server or its logs). ``GET /fairs`` lists the
fairs the board knows (token required). Fed by :class:`consumers.feed.FairFeed`."""

from __future__ import annotations

import asyncio
import json
import re

import asyncpg
from aiohttp import web
from pydantic import SecretStr

from consumers.board import PAGE
from consumers.errors import QueryError
from consumers.feed import FairFeed
from consumers.queries import QUERIES, run_query
from core.http_auth import token_problem

POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
FAIR_ID = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,79}$")  # events.base.EntityId
KEEP_ALIVE_S = 5.0  # a board hears from the server at least this often (and the host's progress is re-read)


def _needs_token(path: str) -> bool:
    return path.startswith("/queries") or path == "/fairs" or (path.startswith("/fairs/") and path.endswith("/stream"))


def build_api(dsn: str, token: SecretStr | None, feed: FairFeed | None = None) -> web.Application:
    @web.middleware
    async def require_token(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if _needs_token(request.path):
            problem = token_problem(token, request.headers.get("Authorization"))
            if problem is not None:
                return web.json_response({"error": problem[1]}, status=problem[0])
        return await handler(request)

    app = web.Application(middlewares=[require_token])

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        app[POOL] = await asyncpg.create_pool(dsn, min_size=1, max_size=8, timeout=10)
        if feed is not None:
            await feed.start()
        yield
        if feed is not None:
            await feed.stop()
        await app[POOL].close()

    async def index(_: web.Request) -> web.Response:
        return web.json_response({n: q.description for n, q in QUERIES.items()})

    async def query(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            limit = int(request.query.get("limit", "100"))
            async with request.app[POOL].acquire(timeout=10) as conn:
                rows = await run_query(conn, name, request.query.get("university"), limit)
        except ValueError as exc:
            return web.json_response({"error": f"bad limit: {exc}"}, status=400)
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=404 if name not in QUERIES else 400)
        return web.json_response({"query": name, "rows": rows})

    async def healthz(request: web.Request) -> web.Response:
        try:
            async with request.app[POOL].acquire(timeout=5) as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return web.json_response({"status": "database unavailable", "error": str(exc)}, status=503)
        return web.json_response({"status": "ok"})

    async def fairs(_: web.Request) -> web.Response:
        if feed is None:
            return web.json_response({"error": "the fair board is off in this process"}, status=404)
        return web.json_response({f: {"name": v.value.get("name"), "status": v.value.get("status"),
                                      "updated_at": v.updated_at} for f, v in feed.boards.fairs.items()})

    page = PAGE.read_text(encoding="utf-8") if feed is not None else ""  # once, not per request

    async def board(request: web.Request) -> web.Response:
        if feed is None or not FAIR_ID.match(request.match_info["fair_id"]):
            return web.Response(status=404, text="no such fair board")
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                     "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                                                "script-src 'unsafe-inline'"})

    async def stream(request: web.Request) -> web.StreamResponse:
        fair_id = request.match_info["fair_id"]
        if feed is None or not FAIR_ID.match(fair_id):
            return web.json_response({"error": "no such fair board"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue, last = feed.subscribe(fair_id), None
        try:
            while True:
                figures = feed.boards.fairs.get(fair_id)
                host = await feed.host_progress(request.app[POOL], figures.value.get("host_university")
                                                if figures else None)
                message = feed.boards.message(fair_id, host) or json.dumps({"fair_id": fair_id, "fair": None})
                await response.write(f"event: fair\ndata: {message}\n\n".encode() if message != last
                                     else b": still here\n\n")
                last = message
                try:
                    await asyncio.wait_for(queue.get(), timeout=KEEP_ALIVE_S)
                except TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the board went away (or the server stops)
        finally:
            feed.unsubscribe(fair_id, queue)
        return response

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/fairs", fairs)
    app.router.add_get("/fairs/{fair_id}", board)
    app.router.add_get("/fairs/{fair_id}/stream", stream)
    app.router.add_get("/queries", index)
    app.router.add_get("/queries/{name}", query)
    async def readyz(request: web.Request) -> web.Response:
        """The database answers, and the fair boards (if on) have read their topic's partitions."""
        if feed is not None and not feed.ready:
            return web.json_response({"status": "fair board feed not connected yet"}, status=503)
        return await healthz(request)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
