"""Every route handler and dependency is ``async def``: FastAPI runs plain ``def`` ones in its
threadpool, a thread hand-off per call that cost three times the whole cached answer (measured)."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute
from hashrec.service.routes import admin, health, model_info, prometheus, recommend


def dependency_calls(dependant):  # type: ignore[no-untyped-def]
    for sub in dependant.dependencies:
        yield sub.call
        yield from dependency_calls(sub)


def test_no_route_or_dependency_runs_in_the_threadpool():
    routers = (
        admin.router,
        health.router,
        model_info.router,
        prometheus.router,
        recommend.router,
    )  # what create_app includes
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    paths = {r.path for r in routes}
    assert {"/v1/recommend", "/v1/recommend/batch", "/v1/similar-items", "/readyz", "/admin/reload"} <= paths
    for route in routes:
        assert inspect.iscoroutinefunction(route.endpoint), route.path
        for call in dependency_calls(route.dependant):
            assert inspect.iscoroutinefunction(call), f"{route.path}: {call.__name__} is a plain def"
