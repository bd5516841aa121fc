"""Container health checks (stdlib only, so they start fast and need nothing else):

    python -m service.healthcheck                 # the API answers /healthz (Dockerfile)
    python -m service.healthcheck --url http://api:8000/readyz --max-lag 10000
                                                  # the store answers and the projections
                                                  # are at most 10000 events behind

Exit code 0 healthy, 1 not (with one line on stderr saying why). The port defaults to
LEDGER_API_PORT (8000).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def verdict(status: int, body: bytes, max_lag: int | None) -> str | None:
    """Why the answer is unhealthy, or None."""
    if status != 200:
        return f"HTTP {status}"
    if max_lag is None:
        return None
    try:
        projections = json.loads(body).get("projections") or {}
    except (ValueError, AttributeError):
        return "the answer is not the JSON of /readyz"
    lag = projections.get("lag")
    if not projections.get("available") or not isinstance(lag, int):
        return "the projections' lag is unknown (is the worker running?)"
    if lag > max_lag:
        return f"the projections are {lag} events behind (more than {max_lag})"
    return None


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("LEDGER_API_PORT", "8000")
    parser = argparse.ArgumentParser(description="chidao-ledger container health check")
    parser.add_argument("--url", default=f"http://127.0.0.1:{port}/healthz")
    parser.add_argument("--max-lag", type=int, default=None,
                        help="with a /readyz URL: the most events projections may be behind")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {args.url}: {exc}", file=sys.stderr)
        return 1
    problem = verdict(status, body, args.max_lag)
    if problem:
        print(f"unhealthy: {args.url}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
