"""Who may read the HTTP views (docs/security.md, "HTTP"): a bearer token, compared in constant time.

The worker's data views (/aggregates/, /entities/) and the portal API (/queries) require
``Authorization: Bearer <ALLIANCE_HTTP_TOKEN>``; health, readiness, /freshness/ and /metrics carry no data
about people and stay open on the internal port. Per-student keys are never served by the worker views.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

PUBLIC_ENTITY_KINDS = ("posting", "fair", "mentor", "employer")  # seekers (students) are never served


def token_problem(token: SecretStr | None, authorization: str | None) -> tuple[int, str] | None:
    """(HTTP status, message) if a request with this ``Authorization`` header may not read a data view."""
    if token is None or not token.get_secret_value():
        return 503, "this view needs ALLIANCE_HTTP_TOKEN configured on the server"
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return 401, "send Authorization: Bearer <token>"
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        return 403, "wrong token"
    return None


def entity_key_problem(key: str) -> tuple[int, str] | None:
    """(HTTP status, message) if the worker view may not serve table key ``key``: only postings, fairs,
    mentors and employers; never a job seeker (per-student data), a member key or a bookkeeping key."""
    kind, sep, rest = key.partition(":")
    if kind == "seeker":
        return 403, "per-student states are not served"
    if not sep or not rest or kind not in PUBLIC_ENTITY_KINDS or "|" in rest:
        return 404, f"no entity {key!r} (kinds: {', '.join(PUBLIC_ENTITY_KINDS)})"
    return None
