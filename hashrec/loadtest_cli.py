"""`hashrec loadtest`: Locust, headless, against a running service; summary.json and a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hashrec.cli_support import emit, fail
from hashrec.loadtest.config import DEFAULTS, LoadTestConfig


def loadtest(
    host: Annotated[
        str, typer.Option(help="Base URL of the service (loopback unless --allow-remote).")
    ] = DEFAULTS.host,
    users: Annotated[
        int, typer.Option(min=1, max=10_000, help="Concurrent simulated users.")
    ] = DEFAULTS.users,
    spawn_rate: Annotated[
        float, typer.Option(min=0.1, help="Users started per second.")
    ] = DEFAULTS.spawn_rate,
    run_time: Annotated[str, typer.Option(help="How long to run: 30s, 5m, 1h30m.")] = DEFAULTS.run_time,
    out: Annotated[
        Path, typer.Option(help="Directory for the CSV, HTML, summary.json and PNG.")
    ] = DEFAULTS.out,
    store: Annotated[
        str,
        typer.Option(envvar="HASHREC_STORE", help="The store the service serves; ids are read from it."),
    ] = DEFAULTS.store,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a host outside loopback (one you run).")
    ] = DEFAULTS.allow_remote,
    shape: Annotated[
        str, typer.Option(help="fixed: --users for --run-time; step: ramp until p99 > --p99-target-ms.")
    ] = DEFAULTS.shape,
    rps: Annotated[
        float, typer.Option(min=0.0, help="Constant throughput: total requests/s to send; 0: no waits.")
    ] = DEFAULTS.rps,
    mix: Annotated[str, typer.Option(help="Request weights.")] = DEFAULTS.mix,
    unknown_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of unknown users.")] = (
        DEFAULTS.unknown_share
    ),
    zipf: Annotated[float, typer.Option(min=0.0, help="Skew of user and item popularity.")] = DEFAULTS.zipf,
    k: Annotated[int, typer.Option(min=1, max=1000, help="k of every request.")] = DEFAULTS.k,
    batch_size: Annotated[int, typer.Option(min=1, max=256, help="Users per batch request.")] = (
        DEFAULTS.batch_size
    ),
    seed: Annotated[int, typer.Option(help="Seed of which users and items are the popular ones.")] = (
        DEFAULTS.seed
    ),
    step_users: Annotated[
        int, typer.Option(min=1, help="Step ramp: users added per step.")
    ] = DEFAULTS.step_users,
    step_time: Annotated[
        float, typer.Option(min=1.0, help="Step ramp: seconds per step.")
    ] = DEFAULTS.step_time,
    max_steps: Annotated[
        int, typer.Option(min=1, max=1000, help="Step ramp: most steps.")
    ] = DEFAULTS.max_steps,
    p99_target_ms: Annotated[float, typer.Option(min=0.0, help="Step ramp: p99 target.")] = (
        DEFAULTS.p99_target_ms
    ),
    expect_workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Run as a Locust master for this many `python -m hashrec.loadtest --worker`s.",
        ),
    ] = DEFAULTS.expect_workers,
    master_port: Annotated[
        int, typer.Option(min=1, max=65535, help="With --expect-workers: port the workers connect to.")
    ] = DEFAULTS.master_port,
    ready_timeout: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for /readyz.")] = (
        DEFAULTS.ready_timeout
    ),
) -> None:
    """Load-test a running service with Locust (headless); write CSV, HTML, summary.json, PNG.

    Prints the summary as one JSON line; exit code 0 when every answer passed its checks, 1 when
    some failed, 2 on bad input (a host outside loopback without --allow-remote, no store, a
    service that never became ready).
    """
    from hashrec.loadtest.run import LoadTestError, run_loadtest

    cfg = LoadTestConfig(
        host=host,
        store=store,
        out=out,
        users=users,
        spawn_rate=spawn_rate,
        run_time=run_time,
        shape=shape,
        rps=rps,
        mix=mix,
        unknown_share=unknown_share,
        zipf=zipf,
        k=k,
        batch_size=batch_size,
        seed=seed,
        step_users=step_users,
        step_time=step_time,
        max_steps=max_steps,
        p99_target_ms=p99_target_ms,
        expect_workers=expect_workers,
        master_port=master_port,
        allow_remote=allow_remote,
        ready_timeout=ready_timeout,
    )
    try:
        summary = run_loadtest(cfg)
    except LoadTestError as err:
        fail(str(err))
    brief = {
        key: summary.get(key) for key in ("requests", "failures", "requests_per_s", "latency_ms", "cache")
    }
    emit({**brief, "model_version": summary["model_version"], "summary": str(out / "summary.json")})
    if summary["failures"] or summary["locust_exit_code"] not in (0, None):
        raise typer.Exit(1)
