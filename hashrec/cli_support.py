"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="HASHREC_STORE",
        help="Model store: a directory or s3://bucket/prefix (endpoint and keys from AWS_* variables).",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit with a one-line reason on stderr."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_store(store: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """``model_store``'s (URL, local directory or None) of a store; exits with one line when it is
    neither (empty, an unsupported URL, a URL naming no bucket)."""
    from hashrec.model_store import StoreError
    from hashrec.model_store.backends import parse_location

    try:
        return parse_location(store)
    except StoreError as err:
        fail(str(err))


def store_location(store: str) -> str:
    """``store`` as another process can open it: an absolute directory, or the URL as given."""
    url, path = parse_store(store)
    return str(path.resolve()) if path is not None else url


def check_store_writable(store: str) -> None:
    """Exit with one line, before any long work, where ``store`` cannot take a new version: a local
    path under a file or an unwritable directory, or a remote URL whose filesystem package is
    missing."""
    from hashrec.model_store import ModelStore, StoreError

    _, path = parse_store(store)
    if path is None:
        try:
            ModelStore(store)  # builds the remote filesystem client: a missing package fails here
        except StoreError as err:
            fail(str(err))
        return
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        fail(f"store {store}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"store {store}: {existing} is not writable")


def emit(obj: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(obj, default=str))
