"""The portal JSON API: ``GET /queries`` lists the queries, ``GET /queries/<name>?university=&limit=``
runs one (both need ``Authorization: Bearer <ALLIANCE_HTTP_TOKEN>``, core.http_auth); ``/healthz`` checks
the database."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import SecretStr

from consumers.errors import QueryError
from consumers.queries import QUERIES, run_query
from core.http_auth import token_problem

POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)


def build_api(dsn: str, token: SecretStr | None) -> web.Application:
    @web.middleware
    async def require_token(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path.startswith("/queries"):
            problem = token_problem(token, request.headers.get("Authorization"))
            if problem is not None:
                return web.json_response({"error": problem[1]}, status=problem[0])
        return await handler(request)

    app = web.Application(middlewares=[require_token])

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        app[POOL] = await asyncpg.create_pool(dsn, min_size=1, max_size=8, timeout=10)
        yield
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

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/queries", index)
    app.router.add_get("/queries/{name}", query)
    app.router.add_get("/healthz", healthz)
    return app
