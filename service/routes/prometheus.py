"""GET /metrics: the Prometheus exposition of every worker's metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from hashrec.service import metrics

router = APIRouter(tags=["metrics"])


@router.head("/metrics", include_in_schema=False, response_model=None)
@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus exposition."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
