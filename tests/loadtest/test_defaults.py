"""One home for the load-test defaults: `loadtest/config.py: DEFAULTS`.

`hashrec loadtest` (hashrec/loadtest_cli.py), loadtest/run.py and the locustfile's `--hashrec-*`
options must all take their defaults from it; a default typed again anywhere fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

from hashrec.loadtest import config
from hashrec.loadtest import run as lt
from hashrec.loadtest.__main__ import LOCUSTFILE
from hashrec.loadtest.config import DEFAULTS, LoadTestConfig, parse_run_time, user_rps
from typer.testing import CliRunner

from hashrec import loadtest_cli
from hashrec.cli import app
from tests.loadtest.conftest import clean_env, require_locust

#: The config fields that are not command-line options.
NOT_OPTIONS = {"extra_env"}
#: locustfile option -> the config field it mirrors (the rest have no `hashrec loadtest` counterpart).
LOCUST_OPTIONS = {
    "hashrec_store": "store",
    "hashrec_mix": "mix",
    "hashrec_unknown_share": "unknown_share",
    "hashrec_zipf": "zipf",
    "hashrec_k": "k",
    "hashrec_batch_size": "batch_size",
    "hashrec_seed": "seed",
    "hashrec_step_users": "step_users",
    "hashrec_step_time": "step_time",
    "hashrec_max_steps": "max_steps",
    "hashrec_p99_target_ms": "p99_target_ms",
}


def _fields() -> dict[str, object]:
    return {f.name: getattr(DEFAULTS, f.name) for f in dataclasses.fields(LoadTestConfig)}


def test_run_and_the_cli_use_the_one_config_class():
    assert lt.LoadTestConfig is config.LoadTestConfig is loadtest_cli.LoadTestConfig
    assert LoadTestConfig() == DEFAULTS


def test_cli_defaults_are_the_config_defaults():
    params = inspect.signature(loadtest_cli.loadtest).parameters
    expected = {name: value for name, value in _fields().items() if name not in NOT_OPTIONS}
    assert set(params) == set(expected), "every config field is a CLI option and the reverse"
    for name, value in expected.items():
        default = params[name].default
        assert default == value and type(default) is type(value), f"--{name.replace('_', '-')}"


def test_cli_with_no_options_runs_the_default_config(monkeypatch):
    monkeypatch.delenv("HASHREC_STORE", raising=False)
    seen: list[LoadTestConfig] = []

    def capture(cfg: LoadTestConfig) -> dict:
        seen.append(cfg)
        raise lt.LoadTestError("captured")

    monkeypatch.setattr(lt, "run_loadtest", capture)
    result = CliRunner().invoke(app, ["loadtest"])
    assert result.exit_code == 2 and "captured" in result.output
    assert seen == [DEFAULTS]


def _defaults_written_in(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every default in `path` that is a literal rather than read from DEFAULTS."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        values: list[ast.expr] = []
        if isinstance(node, ast.FunctionDef):
            values = [d for d in node.args.defaults + node.args.kw_defaults if d is not None]
        elif isinstance(node, ast.Call):
            values = [kw.value for kw in node.keywords if kw.arg == "default"]
        for value in values:
            literal = [n for n in ast.walk(value) if isinstance(n, ast.Constant)]
            reads_defaults = any(isinstance(n, ast.Name) and n.id == "DEFAULTS" for n in ast.walk(value))
            if literal and not reads_defaults and ast.unparse(value) != "''":
                found.append((value.lineno, ast.unparse(value)))
    return found


def test_no_default_is_typed_twice():
    # run.py has no options of its own: it takes LoadTestConfig (checked above) from config.py
    for path in (Path(loadtest_cli.__file__), LOCUSTFILE):
        assert _defaults_written_in(path) == [], f"{path.name}: take defaults from config.DEFAULTS"


_PARSE = """
import json, sys
from locust.util.load_locustfile import load_locustfile
from hashrec.loadtest.__main__ import LOCUSTFILE
load_locustfile(str(LOCUSTFILE))
from locust.argument_parser import get_parser
out = []
for argv in json.loads(sys.argv[1]):
    options = vars(get_parser().parse_args(argv))
    keep = [k for k in options if k.startswith("hashrec_") or k in ("num_users", "spawn_rate", "run_time")]
    out.append({k: options[k] for k in keep})
print(json.dumps(out))
"""


def test_locustfile_and_run_py_pass_the_same_defaults(tmp_path):
    """The locustfile's own defaults, and what run.py passes it for a default run, are DEFAULTS."""
    require_locust()
    base = DEFAULTS.host
    fixed = lt.locust_command(DEFAULTS, base)[3:]  # after `python -m locust`
    step = lt.locust_command(dataclasses.replace(DEFAULTS, shape="step"), base)[3:]
    result = subprocess.run(
        [sys.executable, "-c", _PARSE, json.dumps([[], fixed, step])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # no locust.conf or pyproject.toml of ours to read
        env=clean_env(),  # no HASHREC_STORE / HASHREC_LOADTEST_* of this shell
    )
    assert result.returncode == 0, result.stderr[-2000:]
    own, passed_fixed, passed_step = json.loads(result.stdout)
    for option, name in LOCUST_OPTIONS.items():
        assert own[option] == getattr(DEFAULTS, name), f"locustfile --{option.replace('_', '-')}"
        assert passed_fixed[option] == own[option] and passed_step[option] == own[option], option
    assert own["hashrec_user_rps"] == passed_fixed["hashrec_user_rps"] == user_rps(DEFAULTS) == 0.0
    assert passed_fixed["num_users"] == DEFAULTS.users
    assert passed_fixed["spawn_rate"] == DEFAULTS.spawn_rate
    assert passed_fixed["run_time"] == parse_run_time(DEFAULTS.run_time)  # Locust parses it to seconds
