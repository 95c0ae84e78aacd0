"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import os
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


def store_location(store: str) -> str:
    """``store`` as another process can open it: an absolute directory, or the URL as given.

    Exits with a one-line reason when it is neither (an unsupported URL, a URL naming no bucket).
    """
    from model_store import StoreError
    from model_store.backends import parse_location

    try:
        url, path = parse_location(store)
    except StoreError as err:
        fail(str(err))
    return str(path.resolve()) if path is not None else url


def check_store_writable(store: str) -> None:
    """Exit with one line, before any long work, where ``store`` cannot take a new version: a local
    path under a file or an unwritable directory, or a remote URL whose filesystem package is
    missing."""
    from model_store import ModelStore, StoreError
    from model_store.backends import parse_location

    try:
        _, path = parse_location(store)
        if path is None:
            ModelStore(store)  # builds the remote filesystem client: a missing package fails here
            return
    except StoreError as err:
        fail(str(err))
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
