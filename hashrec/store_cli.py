"""`hashrec store ...`: inspect and manage the model store (a directory or ``s3://bucket/prefix``).

Readable output by default, one JSON document with ``--json``. Errors: one ``error: ...`` line on
stderr and exit code 2; ``verify`` exits 1 when a version fails its checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hashrec.cli_support import StoreOpt, emit, fail, parse_store

if TYPE_CHECKING:
    from hashrec.model_store import Change, GcReport, Manifest, ModelStore

store_app = typer.Typer(help="Inspect and manage the model store.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document instead of text.")]
AliasOpt = Annotated[str, typer.Option("--alias", help="Alias to move (current, production, ...).")]
VersionArg = Annotated[str, typer.Argument(help="A version name or an alias.")]


def _error_types() -> tuple[type[BaseException], ...]:
    """Exceptions reported as one-line errors: the store's, the OS's and the S3 client's."""
    from hashrec.model_store import StoreError

    types: list[type[BaseException]] = [StoreError, OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        types += [BotoCoreError, ClientError]
    except ImportError:
        pass
    return tuple(types)


@contextmanager
def _reported() -> Iterator[None]:
    """Turn store, filesystem and S3 errors into ``error: ...`` and exit 2."""
    try:
        yield
    except _error_types() as err:
        message = str(err) or type(err).__name__
        fail(message.splitlines()[0] if message.strip() else type(err).__name__)


def _open_store(store: str) -> ModelStore:
    """A ModelStore for the --store value; a local directory that does not exist is an error, so a
    mistyped path is not taken for an empty store (nor created by a command that locks it)."""
    from hashrec.model_store import ModelStore

    _, path = parse_store(store)
    if path is not None and not path.is_dir():
        fail(f"no store at {path}: {'not a directory' if path.exists() else 'no such directory'}")
    with _reported():
        return ModelStore(store)


def _human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print left-aligned columns."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        typer.echo(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _headline_metrics(metrics: dict[str, Any]) -> str:
    """'served recall@20=0.1523 ndcg@20=0.0898' (the served ranking), else every top-level number."""
    served = metrics.get("served")
    if isinstance(served, dict):
        ranked = {k: v for k, v in served.items() if "@" in k} or served
        keys = sorted(ranked, key=lambda k: (not k.startswith("recall"), k))
        return "served " + " ".join(f"{k}={_four(ranked[k])}" for k in keys)
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return " ".join(f"{k}={_four(v)}" for k, v in numbers.items())


def _four(value: Any) -> str:
    """A float to 4 decimals, anything else as is."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _format_number(value: Any, short: bool = False) -> str:
    """Floats to 6 significant digits; with ``short``, lists by their length and long text cut."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if short and isinstance(value, list | tuple):
        return f"[{len(value)} items]"
    text = str(value)
    return text[:57] + "..." if short and len(text) > 60 else text


def _labels(store: ModelStore) -> dict[str, list[str]]:
    """version -> its aliases and 'pinned'."""
    labels: dict[str, list[str]] = {}
    for alias, version in sorted(store.aliases().items(), key=lambda item: (item[0] != "current", item[0])):
        labels.setdefault(version, []).append(alias)
    for version in store.pins():
        labels.setdefault(version, []).append("pinned")
    return labels


def _dataset_label(manifest: Manifest) -> str:
    """Short description of a version's training data."""
    dataset = manifest.dataset
    source = str(dataset.get("source") or dataset.get("path") or "-")
    if "users" in dataset and "items" in dataset:
        return f"{source} ({dataset['users']}u x {dataset['items']}i)"
    return source


@store_app.command("list")
def store_list(store: StoreOpt = "store", as_json: JsonOpt = False) -> None:
    """Versions, oldest first: created, dataset, metrics, size, aliases; '*' marks the current one."""
    model_store = _open_store(store)
    with _reported():
        current = model_store.current()
        manifests = model_store.list_versions()
        labels = _labels(model_store)
        unreadable = model_store.version_folders()[len(manifests) :]
    if unreadable:  # on stderr, so that --json stays one document
        typer.echo(
            f"warning: no readable manifest in {', '.join(unreadable)}: "
            "not listed; `hashrec store verify` names the damage",
            err=True,
        )
    rows = [
        {
            "version": m.version,
            "current": m.version == current,
            "created_at": m.created_at,
            "dataset": m.dataset.get("source"),
            "bits": m.bits,
            "metrics": m.metrics,
            "served_recall@20": (m.metrics.get("served") or {}).get("recall@20"),
            "bytes": sum(f.size for f in m.files.values()),
            "aliases": [label for label in labels.get(m.version, []) if label != "pinned"],
            "pinned": "pinned" in labels.get(m.version, []),
        }
        for m in manifests
    ]
    if as_json:
        emit(rows)
        return
    if not rows:
        typer.echo(f"no versions in {model_store.url}")
        return
    table = []
    for manifest in manifests:
        metrics = _headline_metrics(manifest.metrics)
        table.append(
            [
                ("* " if manifest.version == current else "  ") + manifest.version,
                manifest.created_at[:19].replace("T", " "),
                _dataset_label(manifest),
                str(manifest.bits),
                metrics or "-",
                _human_bytes(sum(f.size for f in manifest.files.values())),
                ", ".join(labels.get(manifest.version, [])) or "-",
            ]
        )
    _table(["  VERSION", "CREATED (UTC)", "DATASET", "BITS", "METRICS", "SIZE", "ALIASES"], table)


@store_app.command("show")
def store_show(version: VersionArg, store: StoreOpt = "store", as_json: JsonOpt = False) -> None:
    """Everything the manifest of one version records, with its aliases and pin."""
    from hashrec.model_store.diff import flatten

    model_store = _open_store(store)
    with _reported():
        name = model_store.resolve(version)
        manifest = model_store.manifest(name)
        labels = _labels(model_store).get(name, [])
    if as_json:
        emit(
            {
                **manifest.model_dump(),
                "aliases": [x for x in labels if x != "pinned"],
                "pinned": "pinned" in labels,
            }
        )
        return
    typer.echo(f"version         {manifest.version}")
    typer.echo(f"created         {manifest.created_at}")
    typer.echo(f"format_version  {manifest.format_version}")
    typer.echo(f"bits            {manifest.bits}")
    typer.echo(f"aliases         {', '.join(labels) or '-'}")
    for section in ("dataset", "config", "metrics", "libraries"):
        typer.echo(f"{section}:")
        values = flatten(getattr(manifest, section))
        for key, value in values.items():
            typer.echo(f"  {key} = {_format_number(value)}")
        if not values:
            typer.echo("  (none)")
    total = sum(entry.size for entry in manifest.files.values())
    typer.echo(f"files ({len(manifest.files)}, {_human_bytes(total)}):")
    _table(
        ["  name", "bytes", "sha256"],
        [[f"  {name}", f"{e.size:,}", e.sha256[:16]] for name, e in sorted(manifest.files.items())],
    )


@store_app.command("verify")
def store_verify(
    version: Annotated[str | None, typer.Argument(help="Version or alias; default: every version.")] = None,
    store: StoreOpt = "store",
    as_json: JsonOpt = False,
) -> None:
    """Re-hash every file; exit 1 naming the first bad file of each damaged version."""
    from hashrec.model_store import CorruptVersion, UnsupportedFormat, VersionNotFound

    model_store = _open_store(store)
    with _reported():
        names = [model_store.resolve(version)] if version is not None else model_store.version_folders()
    results = []
    for name in names:
        error = None
        with _reported():
            try:
                files = len(model_store.verify(name).files)
            except (CorruptVersion, UnsupportedFormat) as err:
                error = str(err)
            except VersionNotFound:
                if version is not None:
                    raise
                error = f"version {name}: manifest.json is missing"
        if error is None:
            results.append({"version": name, "ok": True, "files": files, "error": None})
        else:
            results.append({"version": name, "ok": False, "files": None, "error": error})
    if as_json:
        emit(results)
    else:
        if not results:
            typer.echo(f"no versions in {model_store.url}")
        for result in results:
            if result["ok"]:
                typer.echo(f"ok      {result['version']}  {result['files']} files + manifest")
            else:
                typer.echo(f"FAILED  {result['error']}")
    if not all(result["ok"] for result in results):
        raise typer.Exit(1)


@store_app.command("promote")
def store_promote(
    version: VersionArg, store: StoreOpt = "store", alias: AliasOpt = "current", as_json: JsonOpt = False
) -> None:
    """Verify VERSION (checksums, and that a service can load it) and point an alias (default:
    current) at it."""
    from hashrec.retrieval.schema import check_recommender

    model_store = _open_store(store)
    with _reported():
        name = model_store.resolve(version)
        # checksums, then what the service reads (types and shapes), before the alias moves
        previous = model_store.promote(name, alias, check=check_recommender)
    if as_json:
        emit({"alias": alias, "version": name, "previous": previous})
    else:
        typer.echo(f"{alias}: {previous or '(unset)'} -> {name}")


@store_app.command("rollback")
def store_rollback(store: StoreOpt = "store", alias: AliasOpt = "current", as_json: JsonOpt = False) -> None:
    """Point an alias (default: current) back at the version it named before."""
    model_store = _open_store(store)
    with _reported():
        previous = model_store.aliases().get(alias)
        target = model_store.rollback(alias)
    if as_json:
        emit({"alias": alias, "version": target, "previous": previous})
    else:
        typer.echo(f"{alias}: {previous} -> {target} (rollback)")


@store_app.command("pin")
def store_pin(
    version: VersionArg,
    store: StoreOpt = "store",
    note: Annotated[str, typer.Option(help="Why it is pinned.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Protect a version from gc and delete."""
    model_store = _open_store(store)
    with _reported():
        name = model_store.resolve(version)
        model_store.pin(name, note)
    emit({"pinned": name, "note": note}) if as_json else typer.echo(f"pinned {name}")


@store_app.command("unpin")
def store_unpin(version: VersionArg, store: StoreOpt = "store", as_json: JsonOpt = False) -> None:
    """Remove a pin."""
    model_store = _open_store(store)
    with _reported():
        name = model_store.resolve(version)
        was_pinned = model_store.unpin(name)
    if as_json:
        emit({"unpinned": name, "was_pinned": was_pinned})
    else:
        typer.echo(f"unpinned {name}" if was_pinned else f"{name} was not pinned")


@store_app.command("unalias")
def store_unalias(
    name: Annotated[str, typer.Argument(help="Alias to remove.")], store: StoreOpt = "store"
) -> None:
    """Remove an alias (not current)."""
    model_store = _open_store(store)
    with _reported():
        version = model_store.remove_alias(name)
    typer.echo(f"removed alias {name} (was {version})")


@store_app.command("history")
def store_history(store: StoreOpt = "store", alias: AliasOpt = "current", as_json: JsonOpt = False) -> None:
    """Every change of an alias, oldest first."""
    from dataclasses import asdict

    model_store = _open_store(store)
    with _reported():
        events = model_store.history(alias)
    if as_json:
        emit([asdict(event) for event in events])
        return
    for event in events:
        typer.echo(
            f"{event.at[:19].replace('T', ' ')}  {event.action:<8}  {event.previous or '-'} -> "
            f"{event.version or '-'}  by {event.by}"
        )


def _gc_lines(report: GcReport) -> list[str]:
    """Readable lines of a gc report."""
    verb = "would delete" if report.dry_run else "deleted"
    lines = [f"{verb} {version}" for version in report.deleted]
    lines += [f"kept {version} ({', '.join(reasons)})" for version, reasons in report.kept.items()]
    lines += [f"{verb} incomplete {name}" for name in report.incomplete]
    lines += [f"left unreadable {name}: {why}" for name, why in report.unreadable.items()]
    return lines or ["nothing to do"]


@store_app.command("gc")
def store_gc(
    keep: Annotated[int, typer.Option("--keep", min=0, help="Newest versions to keep.")],
    store: StoreOpt = "store",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    stale_after: Annotated[
        float | None, typer.Option(min=0.0, help="S3: seconds before an unfinished upload counts as dead.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete all but the N newest versions; current, aliased, pinned and rollback targets stay."""
    from dataclasses import asdict

    model_store = _open_store(store)
    with _reported():
        report = model_store.gc(keep, dry_run=dry_run, stale_after_s=stale_after)
    if as_json:
        emit(asdict(report))
        return
    for line in _gc_lines(report):
        typer.echo(line)


@store_app.command("delete")
def store_delete(
    version: Annotated[str, typer.Argument(help="Version name.")], store: StoreOpt = "store"
) -> None:
    """Delete one version (refused for current, aliased, pinned or rollback-target versions)."""
    model_store = _open_store(store)
    with _reported():
        model_store.delete(version)
    typer.echo(f"deleted {version}")


def _change_line(change: Change) -> str:
    """One readable line of a diff."""
    if change.section == "files":
        old = f"{change.old['size']:,} B" if change.old else "absent"
        new = f"{change.new['size']:,} B" if change.new else "absent"
        return f"{change.path}: {old} -> {new}" + (" (content differs)" if change.old and change.new else "")
    line = (
        f"{change.path}: {_format_number(change.old, short=True)} -> {_format_number(change.new, short=True)}"
    )
    if change.delta is not None:
        line += f" ({change.delta:+.4g})"
    return line


@store_app.command("diff")
def store_diff(
    a: Annotated[str, typer.Argument(help="Older version or alias.")],
    b: Annotated[str, typer.Argument(help="Newer version or alias.")],
    store: StoreOpt = "store",
    as_json: JsonOpt = False,
) -> None:
    """Config, metric, dataset, bit width, library and file changes from A to B."""
    model_store = _open_store(store)
    with _reported():
        name_a, name_b = model_store.resolve(a), model_store.resolve(b)
        changes = model_store.diff(name_a, name_b)
    if as_json:
        emit({"a": name_a, "b": name_b, "changes": [change.as_dict() for change in changes]})
        return
    typer.echo(f"{name_a} -> {name_b}: {len(changes)} change(s)")
    for change in changes:
        typer.echo(f"  {_change_line(change)}")
