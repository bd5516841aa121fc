"""Request bodies are checked before FastAPI sees them: JSON only, strict UTF-8, no
duplicate keys, bounded nesting, no NaN/Infinity, no unpaired surrogate escapes.

FastAPI's own parsing is lenient where a ledger must not be: ``{"summary": "a",
"summary": "b"}`` silently keeps the last value (so two systems could read one request
two ways), a body without ``Content-Type`` or as ``text/plain`` reaches validation as a
bare string, UTF-16 is guessed, ``NaN`` is accepted, and very deep nesting ends in a
generic parser error. Each of these is answered here with a precise problem+json
(400 ``malformed-json``, ``duplicate-json-key``, ``json-too-deep``; 415
``unsupported-media-type``) and the request never reaches a route.

The middleware sits inside RequestMiddleware, so the body it buffers is already capped at
LEDGER_API_MAX_BODY_BYTES (413 otherwise); the buffered body is replayed to the app.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from service.problems import problem

MAX_DEPTH = 32
_WITH_BODY = {"POST", "PUT", "PATCH"}
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class BadBody(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def _reject_constant(name: str) -> Any:
    raise BadBody(400, "malformed-json", f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            shown = key if len(key) <= 60 else key[:60] + "…"
            raise BadBody(400, "duplicate-json-key",
                          f"the key {shown!r} appears twice in one JSON object; send it once")
        seen[key] = value
    return seen


def nesting_depth(text: str, limit: int) -> int:
    """The deepest nesting of arrays/objects in a JSON text, counting up to ``limit + 1``
    (a linear scan that skips strings; no recursion, so any depth is safe to measure)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_json_body(content_type: str | None, content_encoding: str | None,
                    body: bytes) -> None:
    """Raise BadBody if ``body`` is not a JSON text the service accepts."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not _JSON_TYPE.match(media):
        shown = media or "none"
        raise BadBody(415, "unsupported-media-type",
                      f"the body must be JSON sent as 'Content-Type: application/json' "
                      f"(got {shown[:80]})")
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        raise BadBody(415, "unsupported-media-type",
                      "compressed request bodies (Content-Encoding) are not accepted")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(400, "malformed-json",
                      f"the body is not valid UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    if nesting_depth(text, MAX_DEPTH) > MAX_DEPTH:
        raise BadBody(400, "json-too-deep",
                      f"the JSON body nests arrays/objects deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates,
                           parse_constant=_reject_constant)
    except BadBody:
        raise
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError, and ValueError for integers beyond Python's digit limit.
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(
            exc, json.JSONDecodeError) else ""
        raise BadBody(400, "malformed-json", f"the request body is not valid JSON{where}"
                      ) from None
    if _has_surrogate(value):
        raise BadBody(400, "malformed-json",
                      "the body contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), "
                      "which is not a Unicode character")


class BodyGuard:
    """Pure ASGI middleware (streaming responses pass through untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", [])}
            try:
                check_json_body(headers.get("content-type"), headers.get("content-encoding"),
                                body)
            except BadBody as bad:
                request = Request(scope)
                response = problem(request, bad.status, bad.code, bad.detail, field="body")
                await response(scope, receive, send)
                return
        await self.app(scope, _replay([{"type": "http.request", "body": body,
                                        "more_body": False}], receive), send)


def _replay(messages: list[dict[str, Any]], receive):
    pending = list(messages)

    async def replayed():
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
