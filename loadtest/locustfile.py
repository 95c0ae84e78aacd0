"""Locust users for the hashrec service.

Run it through ``hashrec loadtest`` (headless, with a summary), or directly::

    HASHREC_LOADTEST_STORE=demo-store locust -f loadtest/locustfile.py --host http://127.0.0.1:8000

Ids come from the model store the service serves (``--hashrec-store`` / ``HASHREC_LOADTEST_STORE``;
see ``loadtest/ids.py``). Each task run sends one request, chosen by the weighted ``--hashrec-mix``:

* ``recommend``: ``POST /v1/recommend`` for a Zipf-drawn user, or (``--hashrec-unknown-share``) an
  unknown one, which must get the popular items with ``fallback: true``;
* ``batch``: ``POST /v1/recommend/batch`` for ``--hashrec-batch-size`` such users;
* ``similar``: ``POST /v1/similar-items`` for a popularity-skewed item.

Every answer is checked (status, model version, echoed ids, fallback flag, item count, no
duplicates, descending scores; ``loadtest/checks.py``): a wrong answer is a failure. Requests are
grouped by route. ``--hashrec-user-rps R`` paces each user at R requests/s (Locust's
``constant_throughput``); 0 sends the next request as soon as the answer arrives.
"""

from __future__ import annotations

import logging
import os
import random
import threading

import gevent
from hashrec.loadtest.checks import check_batch, check_recommend, check_similar
from hashrec.loadtest.config import ACTIONS, DEFAULTS, ROUTES, parse_mix, user_rps
from hashrec.loadtest.id_pool import IdPool, load_pool, unknown_user
from locust import FastHttpUser, constant, constant_throughput, events, task
from locust.runners import MasterRunner

log = logging.getLogger("hashrec.loadtest")

_pools: dict[tuple[str, float, int], IdPool] = {}
_pools_lock = threading.Lock()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # type: ignore[no-untyped-def]
    """Custom options; Locust forwards them from the master to its workers.

    Their defaults are ``hashrec loadtest``'s (``loadtest/config.py: DEFAULTS``).
    """
    add = parser.add_argument
    add(
        "--hashrec-store",
        env_var="HASHREC_LOADTEST_STORE",
        default=os.environ.get("HASHREC_STORE", DEFAULTS.store),
        help="Model store the service serves; user and item ids are read from its current version.",
    )
    add(
        "--hashrec-mix",
        env_var="HASHREC_LOADTEST_MIX",
        default=DEFAULTS.mix,
        help="Weights of recommend, batch and similar requests.",
    )
    add(
        "--hashrec-unknown-share",
        env_var="HASHREC_LOADTEST_UNKNOWN_SHARE",
        type=float,
        default=DEFAULTS.unknown_share,
        help="Share of users unknown to the model (answered with the popular items).",
    )
    add(
        "--hashrec-zipf",
        env_var="HASHREC_LOADTEST_ZIPF",
        type=float,
        default=DEFAULTS.zipf,
        help="Zipf exponent of user and item popularity (0: uniform).",
    )
    add("--hashrec-k", env_var="HASHREC_LOADTEST_K", type=int, default=DEFAULTS.k, help="k of every request.")
    add(
        "--hashrec-batch-size",
        env_var="HASHREC_LOADTEST_BATCH_SIZE",
        type=int,
        default=DEFAULTS.batch_size,
        help="Users per /v1/recommend/batch request.",
    )
    add(
        "--hashrec-seed",
        env_var="HASHREC_LOADTEST_SEED",
        type=int,
        default=DEFAULTS.seed,
        help="Seed of which users and items are the popular ones.",
    )
    add(
        "--hashrec-user-rps",
        env_var="HASHREC_LOADTEST_USER_RPS",
        type=float,
        default=user_rps(DEFAULTS),
        help="Requests/s of each user (constant throughput); 0: no wait between requests.",
    )
    add(
        "--hashrec-step-users",
        env_var="HASHREC_LOADTEST_STEP_USERS",
        type=int,
        default=DEFAULTS.step_users,
        help="Step ramp (step_shape.py): users added per step.",
    )
    add(
        "--hashrec-step-time",
        env_var="HASHREC_LOADTEST_STEP_TIME",
        type=float,
        default=DEFAULTS.step_time,
        help="Step ramp: seconds per step.",
    )
    add(
        "--hashrec-max-steps",
        env_var="HASHREC_LOADTEST_MAX_STEPS",
        type=int,
        default=DEFAULTS.max_steps,
        help="Step ramp: most steps.",
    )
    add(
        "--hashrec-p99-target-ms",
        env_var="HASHREC_LOADTEST_P99_TARGET_MS",
        type=float,
        default=DEFAULTS.p99_target_ms,
        help="Step ramp: stop at the first step whose p99 exceeds this.",
    )
    add(
        "--hashrec-steps-out",
        env_var="HASHREC_LOADTEST_STEPS_OUT",
        default="",
        help="Step ramp: JSON file for the per-step results.",
    )


def _pool(options) -> IdPool:  # type: ignore[no-untyped-def]
    key = (options.hashrec_store, options.hashrec_zipf, options.hashrec_seed)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = load_pool(*key)
        return _pools[key]


@events.init.add_listener
def _refresh_clock(environment, **_: object) -> None:  # type: ignore[no-untyped-def]
    """Let --run-time count from now, not from when gevent's loop last looked at the clock.

    Locust arms the run-time timer with ``gevent.spawn_later`` right after this event; libev
    measures it from the loop's cached time, which is stale by however long the imports took
    (seconds on a busy machine), and the run then ends that much early.
    """
    gevent.get_hub().loop.update_now()


@events.test_start.add_listener
def _check_store(environment, **_: object) -> None:  # type: ignore[no-untyped-def]
    """Fail fast, once, when the ids cannot be read (the master runs no users and needs none)."""
    if isinstance(environment.runner, MasterRunner) or environment.parsed_options is None:
        return
    try:
        pool = _pool(environment.parsed_options)
    except Exception as err:
        log.error("cannot read ids from store %r: %s", environment.parsed_options.hashrec_store, err)
        environment.process_exit_code = 2
        gevent.spawn_later(0, environment.runner.quit)  # after start() returns: quitting inside it is lost
        return
    log.info("ids from version %s: %d users", pool.version, len(pool.users.values))


class HashrecUser(FastHttpUser):
    """One client: a weighted mix of the three query routes, every answer checked."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.pool = _pool(options)
        self.rng = random.Random()  # noqa: S311 (traffic, not secrets)
        self.k = options.hashrec_k
        self.batch_size = options.hashrec_batch_size
        self.unknown_share = options.hashrec_unknown_share
        mix = parse_mix(options.hashrec_mix)
        self.actions = [a for a in ACTIONS if mix.get(a, 0) > 0]
        self.weights = [mix[a] for a in self.actions]
        rate = options.hashrec_user_rps
        self._wait = constant_throughput(rate) if rate > 0 else constant(0)

    def wait_time(self) -> float:
        return self._wait(self)

    def _user(self) -> tuple[str, bool]:
        if self.rng.random() < self.unknown_share:
            return unknown_user(self.rng), False
        return self.pool.users.draw(self.rng), True

    def _post(self, action: str, payload: dict[str, object], check) -> None:  # type: ignore[no-untyped-def]
        route = ROUTES[action]
        with self.client.post(route, json=payload, name=route, catch_response=True) as response:
            if response.status_code != 200:
                detail = (response.text or "")[:120].replace("\n", " ")
                response.failure(f"HTTP {response.status_code}: {detail}")
                return
            try:
                body = response.json()
            except ValueError:
                response.failure("answer is not JSON")
                return
            reason = check(body)
            if reason is None:
                response.success()
            else:
                response.failure(reason)

    @task
    def query(self) -> None:
        action = self.rng.choices(self.actions, self.weights)[0]
        pool, k = self.pool, self.k
        if action == "recommend":
            user, known = self._user()
            self._post(
                action, {"user_id": user, "k": k}, lambda body: check_recommend(body, pool, user, known, k)
            )
        elif action == "batch":
            drawn = [self._user() for _ in range(self.batch_size)]
            users = [u for u, _ in drawn]
            flags = [kn for _, kn in drawn]
            self._post(
                action, {"user_ids": users, "k": k}, lambda body: check_batch(body, pool, users, flags, k)
            )
        else:
            item = pool.items.draw(self.rng)
            self._post(action, {"item_id": item, "k": k}, lambda body: check_similar(body, pool, item, k))
