"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
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


def emit(obj: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(obj, default=str))
