"""docker-compose.yml and the Dockerfiles, checked against the project without a Docker engine.

1. Static: every service's build (context, Dockerfile, stage) or pinned image, its command (a real
   `hashrec` command whose options parse), ports, healthcheck route, environment (real settings),
   volumes and depends_on agree with the code.
2. `docker compose config`, where a Docker client with the compose plugin exists.
3. The same stack as local processes, in the file's order and from the file's own commands:
   Redis, datagen and indexer (one-shot), the service (Redis cache, 2 workers, healthy by the file's
   own healthcheck), a Locust worker and the `hashrec loadtest` master.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import typer.main
from fastapi.testclient import TestClient
from hashrec.service.app import create_app
from hashrec.service.settings import Settings

from hashrec.cli import app as cli_app
from tests.loadtest import compose as cf
from tests.loadtest.conftest import clean_env, require_locust, stop
from tests.service.redis_server import _ping, redis_url
from tests.support import free_port

ROOT = cf.ROOT
DOC = cf.load()
SERVICES = DOC["services"]
CLI = typer.main.get_command(cli_app)


def _cli_params(name: str) -> dict[str, object]:
    command = CLI.commands[name]  # type: ignore[attr-defined]
    return {p.name: p.default for p in command.params}


def _dockerfile(service: dict) -> Path:
    build = service["build"]
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def _stages(dockerfile: Path) -> list[tuple[str, str]]:
    """(base, stage name) of each FROM line."""
    found = re.findall(
        r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile.read_text(), re.MULTILINE | re.IGNORECASE
    )
    return [(base, name) for base, name in found]


def _arg_default(dockerfile: Path, name: str) -> str | None:
    match = re.search(rf"^ARG\s+{name}=(\S+)", dockerfile.read_text(), re.MULTILINE)
    return match.group(1) if match else None


# ---------------------------------------------------------------- 1. static checks


def test_services_and_order():
    assert list(cf.start_order(DOC)) == [
        "redis",
        "datagen",
        "indexer",
        "service",
        "locust-worker",
        "locust-master",
    ]
    assert cf.one_shot(DOC) == {"datagen", "indexer"}
    for name in cf.one_shot(DOC):
        assert SERVICES[name].get("restart") == "no", f"{name} is a one-shot job and must not restart"
    assert cf.depends_on(SERVICES["service"]) == {
        "redis": "service_healthy",
        "indexer": "service_completed_successfully",
    }
    for name, service in SERVICES.items():
        for dep, condition in cf.depends_on(service).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], (
                    f"{name} waits for {dep} to be healthy; it has no healthcheck"
                )
    assert {n for n, s in SERVICES.items() if s.get("profiles")} == {"locust-master", "locust-worker"}
    assert all(s.get("profiles", ["loadtest"]) == ["loadtest"] for s in SERVICES.values())


def test_images_and_builds_exist_and_are_pinned():
    for name, service in SERVICES.items():
        if "build" not in service:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), (
                f"{name}: image {image!r} is not pinned to an exact version"
            )
            continue
        dockerfile = _dockerfile(service)
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        assert (ROOT / service["build"]["context"]).is_dir()
        stages = [stage for _, stage in _stages(dockerfile)]
        assert service["build"]["target"] in stages, (
            f"{name}: no stage {service['build']['target']} in {dockerfile}"
        )
        assert service["image"].endswith(":local")
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        for base, _ in _stages(dockerfile):
            if base.startswith("${"):
                base = _arg_default(dockerfile, base.strip("${}"))
                assert base is not None, f"{dockerfile.name}: ARG without a default"
            stage_names = {stage for _, stage in _stages(dockerfile)}
            if base in stage_names:
                continue
            assert re.search(r":\d+\.\d+\.\d+", base), (
                f"{dockerfile.name}: base {base} is not an exact version"
            )


def test_dockerfiles_run_as_an_unprivileged_user_and_install_real_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text()
        final_stages = re.split(r"^FROM\s", text, flags=re.MULTILINE)[1:]
        for stage in final_stages:
            if "COPY --from=" in stage:  # a runtime stage
                user = re.findall(r"^USER\s+(\S+)", stage, re.MULTILINE)
                assert user and user[-1] not in ("root", "0"), (
                    f"{dockerfile.name}: a runtime stage runs as root"
                )
        for names in re.findall(r'pip install "?\.\[([\w,]+)\]', text):
            for extra in names.split(","):
                assert extra in extras, f"{dockerfile.name} installs .[{extra}], which pyproject.toml lacks"
        for source in re.findall(r"^COPY\s+(?!--from)(\S+)", text, re.MULTILINE):
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
            assert _docker_includes(source), f"{dockerfile.name}: COPY {source} is excluded by .dockerignore"
    assert "locust" in " ".join(extras.get("load", [])) and "matplotlib" in " ".join(extras.get("load", []))
    assert "torch" not in " ".join(extras["serve"])
    assert "download.pytorch.org/whl/cpu" in (ROOT / "docker/train.Dockerfile").read_text()


def _docker_includes(path: str) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last matching rule wins)."""
    included = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.rstrip("/").split("/")
        if any(re.fullmatch(regex, "/".join(parts[: i + 1])) for i in range(len(parts))):
            included = negate
    return included


def test_dockerignore_keeps_the_context_small():
    for kept in ("pyproject.toml", "README.md", "hashrec/cli.py", "loadtest/locustfile.py", "service/app.py"):
        assert _docker_includes(kept), kept
    for dropped in (".venv/bin/python", "store/refs/current", "tests/test_cli.py", ".git/HEAD",
                    "hashrec/__pycache__/cli.cpython-311.pyc", "benchmarks/results/x.json"):  # fmt: skip
        assert not _docker_includes(dropped), dropped


def test_commands_are_real_cli_commands_whose_options_parse():
    for name, service in SERVICES.items():
        argv = [str(a) for a in service.get("command", [])]
        if argv[:1] == ["hashrec"]:
            assert argv[1] in CLI.commands, f"{name}: `hashrec {argv[1]}` is not a command"  # type: ignore[attr-defined]
            try:
                CLI.commands[argv[1]].make_context(argv[1], argv[2:])  # type: ignore[attr-defined]
            except Exception as err:  # click's usage errors
                pytest.fail(f"{name}: `{' '.join(argv)}` does not parse: {err}")
        elif argv[:3] == ["python", "-m", "hashrec.loadtest"]:
            require_locust()
            # Locust's own parser with the locustfile's options, as `python -m hashrec.loadtest` runs it
            result = subprocess.run(
                [sys.executable, "-c", _PARSE_LOCUST_ARGS, *argv[3:]],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, f"{name}: {argv} does not parse: {result.stderr[-500:]}"
            parsed = json.loads(result.stdout)
            assert parsed["worker"] and parsed["master_host"] == "locust-master"
        else:
            assert argv[0] == "redis-server" and service["image"].startswith("redis:")


_PARSE_LOCUST_ARGS = """
import json, sys
from locust.util.load_locustfile import load_locustfile
from hashrec.loadtest.__main__ import LOCUSTFILE
load_locustfile(str(LOCUSTFILE))
from locust.argument_parser import get_parser
options = get_parser().parse_args(sys.argv[1:])
print(json.dumps({"worker": options.worker, "master_host": options.master_host}))
"""


def test_index_knobs_default_to_the_cli_defaults():
    argv = [str(a) for a in SERVICES["indexer"]["command"]]
    defaults = _cli_params("index")
    for flag in ("--encoder", "--epochs", "--bits", "--quantizer"):
        name = flag.removeprefix("--")
        assert str(cf.option(argv, flag)) == str(defaults[name]), (
            f"{flag}: compose and `hashrec index` differ"
        )


def test_ports_healthchecks_and_addresses_match_the_code(tmp_path):
    service = SERVICES["service"]
    command = [str(a) for a in service["command"]]
    port = int(cf.option(command, "--port"))
    assert port == _cli_params("serve")["port"]  # the CLI's default port
    published = [str(p) for p in service["ports"]]
    assert published == ["127.0.0.1:8000:8000"], "the service is published on loopback only, by default"
    assert cf.option(command, "--host") == "0.0.0.0"  # inside its container; reached through the port mapping
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    url = re.search(r"http://[^'\"]+", " ".join(test)).group(0)
    parts = urlsplit(url)
    assert parts.port == port and parts.path == "/readyz"
    with TestClient(create_app(Settings(store=tmp_path, poll_interval_s=0))) as client:
        # a real route, and one that fails (urlopen raises) until a model is loaded
        assert client.get(parts.path).status_code == 503
        assert client.get("/healthz").status_code == 200
    redis_test = SERVICES["redis"]["healthcheck"]["test"]
    assert redis_test == ["CMD", "redis-cli", "ping"]
    # the load test targets the service's container port; workers find the master by its name
    master = [str(a) for a in SERVICES["locust-master"]["command"]]
    target = urlsplit(cf.option(master, "--host"))
    assert target.hostname == "service" and target.port == port and "--allow-remote" in master
    worker = [str(a) for a in SERVICES["locust-worker"]["command"]]
    assert cf.option(worker, "--master-host") == "locust-master"
    assert int(cf.option(master, "--expect-workers")) == int(SERVICES["locust-worker"]["deploy"]["replicas"])
    assert int(cf.option(master, "--master-port") or _cli_params("loadtest")["master_port"]) == 5557


def test_environment_names_real_settings():
    fields = set(Settings.model_fields)
    env = SERVICES["service"]["environment"]
    for key in env:
        assert key.startswith("HASHREC_") and key.removeprefix("HASHREC_").lower() in fields, key
    settings = Settings(**{k.removeprefix("HASHREC_").lower(): v for k, v in env.items()})
    redis = urlsplit(settings.redis_url)
    assert redis.hostname in SERVICES and redis.port == 6379 and settings.cache_enabled
    assert settings.admin_token is None  # admin stays off unless docker/compose.admin.yml is added


def test_volumes_are_declared_used_and_mounted_where_the_commands_look():
    declared = set(DOC["volumes"])
    used = {source for s in SERVICES.values() for source, _, _ in cf.mounts(s)}
    assert used == declared
    mounts = {
        name: {target: (source, ro) for source, target, ro in cf.mounts(s)} for name, s in SERVICES.items()
    }
    assert mounts["indexer"]["/store"] == ("store", False)  # the only writer of the store
    for name in ("service", "locust-master", "locust-worker"):
        assert mounts[name]["/store"] == ("store", True), f"{name} must mount the store read-only"
    for name, service in SERVICES.items():
        argv = [str(a) for a in service.get("command", [])]
        for flag in ("--store", "--out", "--data"):
            value = cf.option(argv, flag)
            if value is not None:
                assert any(value == t or value.startswith(t + "/") for t in mounts[name]), (
                    f"{name}: {flag} {value} is not on a mounted volume"
                )
    generated = cf.option([str(a) for a in SERVICES["datagen"]["command"]], "--out")
    assert cf.option([str(a) for a in SERVICES["indexer"]["command"]], "--data") == generated
    assert mounts["datagen"]["/data"][0] == mounts["indexer"]["/data"][0]
    # named volumes start as a copy of the image's directory: it must exist, owned by the user
    for dockerfile in ("serve.Dockerfile", "train.Dockerfile"):
        text = (ROOT / "docker" / dockerfile).read_text()
        assert re.search(r"mkdir -p /store /data", text) and "chown hashrec:hashrec /store /data" in text


def test_unsafe_defaults_are_required_settings():
    for override, variable in (
        ("compose.own-data.yml", "HASHREC_DATA_DIR"),
        ("compose.admin.yml", "HASHREC_ADMIN_TOKEN"),
    ):
        path = ROOT / "docker" / override
        assert f"${{{variable}:?" in path.read_text()
        with pytest.raises(cf.MissingVariable, match=variable):
            cf.load(path, {})
        cf.load(path, {variable: "x"})
    cf.load(cf.COMPOSE_FILE, {})  # the main file needs no variable at all


def test_the_read_only_service_keeps_its_caches_on_its_tmpfs():
    service = SERVICES["service"]
    assert service["read_only"] is True
    text = _dockerfile(service).read_text()
    serve_stage = text[text.index(f"AS {service['build']['target']}") :]
    runtime_env = serve_stage[serve_stage.index("ENV NUMBA_CACHE_DIR") :]
    env = dict(re.findall(r"\b(NUMBA_CACHE_DIR|HASHREC_STORE_CACHE)=(\S+)", runtime_env))
    assert set(env) == {"NUMBA_CACHE_DIR", "HASHREC_STORE_CACHE"}
    mounts = [entry.split(":")[0] for entry in service["tmpfs"]]  # "/tmp:size=1g"
    for name, path in env.items():
        assert any(Path(path).is_relative_to(mount) for mount in mounts), (name, path)
    # the tmpfs is bounded: a runaway cache fills it, not the host's memory
    assert all(re.search(r"size=\d+[kmg]", entry) for entry in service["tmpfs"])
    # the kernels compiled at build time seed NUMBA_CACHE_DIR at every start
    assert "python -m hashrec.service.warmup /opt/warmup/golden /opt/warmup/golden-walk" in serve_stage
    assert 'ENTRYPOINT ["hashrec-entrypoint"]' in serve_stage


def test_documented_runs_of_the_master_register_its_name_for_the_workers():
    """Workers connect to `locust-master`; `docker compose run` adds that name only with --use-aliases."""
    worker = SERVICES["locust-worker"]["command"]
    assert worker[worker.index("--master-host") + 1] == "locust-master"
    documents = {
        "README.md": (ROOT / "README.md").read_text(),
        "docker-compose.yml": cf.COMPOSE_FILE.read_text(),
    }
    for name, text in documents.items():
        runs = re.findall(r"docker compose [^\n]*?\brun\b(?:[^\n]|\\\n)*?locust-master", text)
        assert runs, f"{name} documents no run of locust-master"
        for run in runs:
            assert "--use-aliases" in run, f"{name}: {run!r}"


def test_interpolation():
    env = {"A": "1", "E": ""}
    assert cf.interpolate("${A}-${B:-2}-${E:-3}-${E-4}-$A-$$A", env) == "1-2-3--1-$A"
    with pytest.raises(cf.MissingVariable, match="B: say"):
        cf.interpolate("${B:?say}", env)


# ---------------------------------------------------------------- 2. docker compose config


def test_docker_compose_config():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on PATH")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        reason = (
            (probe.stderr or probe.stdout).strip().splitlines()[0] if (probe.stderr or probe.stdout) else ""
        )
        pytest.skip(f"the docker client has no compose plugin: {reason}")
    env = {**os.environ, "HASHREC_DATA_DIR": str(ROOT), "HASHREC_ADMIN_TOKEN": "t"}
    for files in (
        ["docker-compose.yml"],
        ["docker-compose.yml", "docker/compose.own-data.yml", "docker/compose.admin.yml"],
    ):
        args = [a for f in files for a in ("-f", str(ROOT / f))]
        result = subprocess.run(
            [docker, "compose", *args, "--profile", "loadtest", "config", "--quiet"],
            capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- 3. the stack as local processes

KNOBS = {  # compose-time variables: small and quick, every other value as the file has it
    "HASHREC_GEN_USERS": "300",
    "HASHREC_GEN_ITEMS": "400",
    "HASHREC_ENCODER": "mf",
    "HASHREC_EPOCHS": "2",
    "HASHREC_BITS": "64",
    "HASHREC_QUANTIZER": "sign",
    "LOCUST_USERS": "4",
    "LOCUST_SPAWN_RATE": "4",
    "LOCUST_RUN_TIME": "3s",
    "LOCUST_WORKERS": "1",
}


def _healthy(argv: list[str], timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Run a healthcheck command until it succeeds, as Compose does."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = subprocess.run(argv, capture_output=True, timeout=30)
        if result.returncode == 0:
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"{argv} never passed: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"healthcheck {argv} still failing after {timeout_s}s: {result.stderr[-300:]!r}")
        time.sleep(0.3)


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


def test_the_stack_runs_as_local_processes_from_the_compose_commands(tmp_path):
    require_locust()
    doc = cf.load(env=KNOBS)
    services = doc["services"]
    volumes = {name: tmp_path / name for name in doc["volumes"]}
    for path in volumes.values():
        path.mkdir()
    port, master_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    outputs: dict[str, str] = {}
    base_env = clean_env()
    try:
        with _redis(services["redis"], tmp_path) as (redis_address, redis_check):
            localizer = cf.Localizer(
                volumes,
                {
                    "redis:6379/0": redis_address,
                    "service:8000": f"127.0.0.1:{port}",
                    "127.0.0.1:8000": f"127.0.0.1:{port}",
                    "0.0.0.0": "127.0.0.1",
                    "locust-master": "127.0.0.1",
                },
            )
            for name in cf.start_order(doc):
                service = services[name]
                if name == "redis":
                    redis_check()
                    continue
                argv = localizer.argv([str(a) for a in service["command"]], service)
                env = {**base_env, **localizer.environment(service)}
                if name == "service":
                    argv[argv.index("--port") + 1] = str(port)
                    store_before = _snapshot(volumes["store"])
                if name.startswith("locust-"):
                    argv += ["--master-port", str(master_port)]  # worker: connect to; master: bind
                if name in cf.one_shot(doc) or name == "locust-master":
                    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
                    assert result.returncode == 0, f"{name}: {' '.join(argv)}\n{result.stderr[-2000:]}"
                    outputs[name] = result.stdout
                    continue
                replicas = int(service.get("deploy", {}).get("replicas", 1))
                for _ in range(replicas):
                    log = (tmp_path / f"{name}.log").open("ab")
                    processes.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
                if "healthcheck" in service:
                    check = localizer.argv([str(a) for a in service["healthcheck"]["test"][1:]], service)
                    _healthy(check, 90, processes[-1])

            # the indexer published one version; the service served it; the load test saw it
            indexed = json.loads(outputs["indexer"].strip().splitlines()[-1])
            summary = json.loads((volumes["loadtest-results"] / "summary.json").read_text())
            assert summary["model_version"] == indexed["version"] == summary["ids_version"]
            assert summary["locust_workers"] == 1
            assert summary["requests"] > 20 and summary["failures"] == 0
            assert summary["latency_ms"]["p99"] is not None
            assert summary["cache"]["hit_ratio"] > 0
            assert set(summary["files"]) >= {"png", "html", "stats_csv"}

            # answers, through Redis: a repeated query is served from the cache, and the key is in Redis
            base = f"http://127.0.0.1:{port}"
            from hashrec.loadtest.id_pool import id_strings
            from hashrec.model_store import ModelStore

            user = id_strings(ModelStore(volumes["store"]).open().array("user_ids")[7:8])[0]
            with httpx.Client(base_url=base, timeout=10) as client:
                first = client.post(
                    "/v1/recommend", json={"user_id": user, "k": 5, "exclude_seen": False}
                ).json()
                second = client.post(
                    "/v1/recommend", json={"user_id": user, "k": 5, "exclude_seen": False}
                ).json()
                assert len(first["items"]) == 5 and first["fallback"] is False
                assert second["cached"] is True and second["items"] == first["items"]
                assert client.get("/readyz").json()["model_version"] == indexed["version"]
            import redis as redis_client

            connection = redis_client.Redis.from_url(f"redis://{redis_address}")
            assert connection.keys(f"*{indexed['version']}*{user}*"), "the answer is not in Redis"
            connection.close()
            assert _snapshot(volumes["store"]) == store_before, "the service wrote to its read-only store"
    finally:
        for process in reversed(processes):
            stop(process)


class _redis:
    """Redis from the compose file's own command when redis-server exists, else one found running."""

    def __init__(self, service: dict, tmp_path: Path) -> None:
        self.service, self.tmp_path = service, tmp_path
        self.process: subprocess.Popen[bytes] | None = None
        self.found = None

    def __enter__(self):
        argv = [str(a) for a in self.service["command"]]
        if shutil.which(argv[0]):
            port = free_port()
            local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.tmp_path)]
            self.process = subprocess.Popen(
                [shutil.which(argv[0]), *argv[1:], *local],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            address = f"127.0.0.1:{port}/0"
        else:
            self.found = redis_url()
            try:
                url = self.found.__enter__()
            except LookupError as err:
                pytest.skip(str(err))
            parts = urlsplit(url)
            address = f"{parts.hostname}:{parts.port}{parts.path or '/0'}"
        host, _, rest = address.partition(":")
        port_text = rest.split("/")[0]

        def check() -> None:
            test = [str(a) for a in self.service["healthcheck"]["test"][1:]]
            if shutil.which(test[0]):
                _healthy([shutil.which(test[0]), "-h", host, "-p", port_text, *test[1:]], 20, self.process)
                return
            deadline = time.monotonic() + 20  # no redis-cli here: PING over a socket instead
            while not _ping(host, int(port_text)):
                assert time.monotonic() < deadline, "Redis never answered PING"
                time.sleep(0.1)

        return address, check

    def __exit__(self, *exc):
        if self.process is not None:
            stop(self.process)
        if self.found is not None:
            self.found.__exit__(*exc)
