"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

StoreOpt = Annotated[Path, typer.Option("--store", help="Model store directory.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit with a one-line reason on stderr."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def emit(obj: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(obj, default=str))
