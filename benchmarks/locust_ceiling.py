"""Locust users for ``serving_http.py --generator locust``: one endpoint per run.

``CEILING_TARGET`` is ``trivial`` (GET /trivial, the route the benchmark mounts) or ``recommend``
(POST /v1/recommend for users ``u0`` .. ``u{CEILING_USERS - 1}`` in turn); ``CEILING_USER_RPS``
paces each Locust user (0: no pause), which is how the half-peak run is held at a rate.
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, constant_throughput, task

TARGET = os.environ.get("CEILING_TARGET", "trivial")
USERS = int(os.environ.get("CEILING_USERS", "1000"))
USER_RPS = float(os.environ.get("CEILING_USER_RPS", "0"))
_counter = itertools.count()


class CeilingUser(FastHttpUser):
    """Sends one kind of request as fast as answers come (or at ``CEILING_USER_RPS``)."""

    wait_time = constant_throughput(USER_RPS) if USER_RPS > 0 else constant(0)

    @task
    def one(self) -> None:
        if TARGET == "trivial":
            self.client.get("/trivial")
            return
        body = {"user_id": f"u{next(_counter) % USERS}", "k": 20}
        self.client.post("/v1/recommend", json=body, name="/v1/recommend")
