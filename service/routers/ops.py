"""Liveness, readiness and metrics (unauthenticated: for the platform, not for people)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import ServicesDep
from service.read_models import jsonable, projection_lag

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz():
    """The process is up (does not touch the store)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep):
    """Ready to serve: the store answers; the read models' lag is reported. 503 when the
    store cannot be reached."""
    body: dict = {"status": "ready", "store": {"dialect": svc.ledger.store.dialect}}
    try:
        breaker = getattr(svc.ledger.recorder.datastore, "breaker", None)
        if breaker is not None:
            breaker.check()  # while the database is away: 503 at once, not after retries
        head = svc.ledger.recorder.max_notification_id() or 0
    except Exception as exc:  # any store failure means "not ready", never a 500
        body.update(status="unavailable", store={"dialect": svc.ledger.store.dialect,
                                                  "error": type(exc).__name__})
        return JSONResponse(body, status_code=503,
                            headers={"Retry-After": str(svc.settings.retry_after_seconds)})
    body["store"]["head"] = head
    svc.metrics.head.set(head)
    if svc.read_models is None:
        body["projections"] = {"available": False}
        svc.metrics.lag.set(-1)
    else:
        try:
            status = svc.read_models.status()
            lag = projection_lag(status, head)
            body["projections"] = {"available": True, "lag": lag, "status": jsonable(status)}
            svc.metrics.lag.set(-1 if lag is None else lag)
        except Exception as exc:
            body["projections"] = {"available": False, "error": type(exc).__name__}
            svc.metrics.lag.set(-1)
    return body


@router.get("/metrics", response_class=Response)
def metrics(svc: ServicesDep):
    """Prometheus text format."""
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
