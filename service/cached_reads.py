"""The commonest read, sent from the answer cache before FastAPI routes the request.

An agency's default page of obligations (``GET /v1/agencies/{code}/obligations`` with no
query parameters: "what do we owe today") is what agency dashboards poll. Once cached, its
answer is one dictionary lookup, yet under load (wrk, 64 connections, two server processes)
about two thirds of a process's CPU went to FastAPI around it: matching the route among
~50, solving the endpoint's dependencies and validating its eight query parameters, on every
request. The reads' p99 was that queue.

This middleware sends such a request's answer itself when all of it can be had without
waiting: the caller's bearer token in the token cache, the projection's freshness read
within ``freshness_seconds`` and the answer cached under it. It decides nothing of its own:
the token cache answers as ``current_token`` would, and the answer, its key and its headers
come from ``routers.queries`` (``cached_default_obligations``). Anything else (a query
string, a token not in the cache, an answer not cached, any other route or method) goes on
to FastAPI, which answers as it always did.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers

from service.read_models import accepts_gzip
from service.routers import queries

_OBLIGATIONS = re.compile(r"^/v1/agencies/([^/]+)/obligations$")
_CODE = re.compile(queries.AGENCY_CODE)
_ROUTE = "/v1/agencies/{code}/obligations"


class CachedReads:
    """Pure ASGI middleware, innermost of the app's own (inside the request log and
    metrics, which see these requests like any other)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # The request log's and metrics' route label (FastAPI keeps included routers whole,
        # so the route is the queries router's own).
        self._route = next(r for r in queries.router.routes
                           if getattr(r, "path", None) == _ROUTE)

    async def __call__(self, scope, receive, send):
        # Mounted under a root path (behind a proxy's prefix), FastAPI routes as usual.
        if (scope["type"] == "http" and scope["method"] == "GET"
                and not scope.get("query_string") and not scope.get("root_path")):
            found = _OBLIGATIONS.match(scope["path"])
            if found and _CODE.match(found.group(1)):
                response = self._cached(scope, found.group(1))
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _cached(self, scope, code: str):
        app = scope.get("app")
        svc = getattr(getattr(app, "state", None), "services", None)
        if svc is None:
            return None
        headers = Headers(scope=scope)
        scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
        if scheme.lower() != "bearer" or not credentials:
            return None
        known, info = svc.tokens.cached(credentials.strip())
        if not known or info is None:  # to be read from the store, or refused: FastAPI's
            return None
        response = queries.cached_default_obligations(
            svc, code, accepts_gzip(headers.get("accept-encoding")))
        if response is None:
            return None
        state = scope.setdefault("state", {})
        state["actor"] = info.principal
        state["role"] = info.role.value
        scope["route"] = self._route
        return response
