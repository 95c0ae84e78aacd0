"""`hashrec store ...`: inspect and manage the model store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hashrec.common import StoreOpt, emit, fail

store_app = typer.Typer(help="Inspect and manage the model store.", no_args_is_help=True)


@store_app.command("list")
def store_list(
    store: StoreOpt = Path("store"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Versions in the store, oldest first; '*' marks the current one."""
    from model_store import ModelStore, StoreError

    model_store = ModelStore(store)
    try:
        current = model_store.current()
        manifests = model_store.list_versions()
    except StoreError as err:
        fail(str(err))
    rows = [
        {
            "version": m.version,
            "current": m.version == current,
            "created_at": m.created_at,
            "dataset": m.dataset.get("source"),
            "bits": m.bits,
            "served_recall@20": (m.metrics.get("served") or {}).get("recall@20"),
            "bytes": sum(f.size for f in m.files.values()),
        }
        for m in manifests
    ]
    if as_json:
        emit(rows)
        return
    if not rows:
        typer.echo(f"no versions in {store}")
    for row in rows:
        mark = "*" if row["current"] else " "
        typer.echo(
            f"{mark} {row['version']}  {row['created_at']}  bits={row['bits']}  "
            f"served_recall@20={row['served_recall@20']}  {row['bytes']:,} B  {row['dataset']}"
        )
