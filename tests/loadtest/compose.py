"""Reading docker-compose.yml the way Compose does, and turning its services into local processes.

Enough of Compose for this project's file: variable interpolation (``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``, ``$VAR``, ``$$``), the start order
from ``depends_on``, and the translation of a service's command, environment and healthcheck from
container terms (volume mount points, service host names, container ports) to local ones.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is unset (or empty)."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Substitute variables in every string of a loaded compose document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset else str(current)
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        return "" if current is None else str(current)

    return _VAR.sub(one, value)


def load(path: Path = COMPOSE_FILE, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose document with anchors resolved and variables interpolated from ``env``."""
    return interpolate(yaml.safe_load(path.read_text()), env or {})  # type: ignore[no-any-return]


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """{dependency: condition}, for both the list and the mapping forms."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def start_order(doc: Mapping[str, Any]) -> list[str]:
    """Services in an order that honours every depends_on (file order among equals)."""
    services = doc["services"]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"depends_on cycle through {name}")
        visiting.add(name)
        for dep in depends_on(services[name]):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name)
    return order


def one_shot(doc: Mapping[str, Any]) -> set[str]:
    """Services some other service waits on to finish (service_completed_successfully)."""
    return {
        dep
        for service in doc["services"].values()
        for dep, condition in depends_on(service).items()
        if condition == "service_completed_successfully"
    }


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, container path, read_only) of each short-syntax volume entry."""
    result = []
    for entry in service.get("volumes") or []:
        parts = str(entry).split(":")
        source, target = parts[0], parts[1]
        result.append((source, target, len(parts) > 2 and "ro" in parts[2].split(",")))
    return result


def option(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in an argv list, or None."""
    return argv[argv.index(name) + 1] if name in argv else None


class Localizer:
    """Container terms -> local ones: mount points -> directories, host:port -> 127.0.0.1:port."""

    def __init__(self, volumes: Mapping[str, Path], addresses: Mapping[str, str]) -> None:
        self.volumes = dict(volumes)  # named volume -> local directory
        self.addresses = dict(addresses)  # "service:8000" -> "127.0.0.1:41234", "locust-master" -> ...

    def text(self, value: str, service: Mapping[str, Any]) -> str:
        for source, target, _ in mounts(service):
            local = self.volumes.get(source)
            if local is not None and (value == target or value.startswith(target + "/")):
                value = str(local) + value[len(target) :]
        for address, local in sorted(self.addresses.items(), key=lambda kv: -len(kv[0])):
            value = re.sub(rf"(?<![\w.-]){re.escape(address)}(?![\w.-])", local, value)
        return value

    def argv(self, argv: list[str], service: Mapping[str, Any]) -> list[str]:
        """The command as a local process: ``hashrec`` and ``python`` from this interpreter."""
        head = {"hashrec": [sys.executable, "-m", "hashrec"], "python": [sys.executable]}.get(argv[0])
        rest = [self.text(str(a), service) for a in argv[1:]]
        return [*(head or [argv[0]]), *rest]

    def environment(self, service: Mapping[str, Any]) -> dict[str, str]:
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {k: self.text(str(v), service) for k, v in env.items()}
