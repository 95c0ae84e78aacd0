"""`hashrec store ...` on a local store: output for people, --json, exit codes."""

from __future__ import annotations

import json

import pytest
from hashrec.model_store import ModelStore
from typer.testing import CliRunner

from hashrec.cli import app
from tests.conftest import planted_arrays, publish_arrays

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny():
    return planted_arrays(n_users=20, n_items=30, dim=4)


@pytest.fixture
def three(tmp_path, tiny) -> tuple[ModelStore, list[str]]:
    store = ModelStore(tmp_path / "store")
    versions = [
        publish_arrays(
            store,
            tiny,
            dataset={"source": "gen.csv", "users": 20, "items": 30},
            config={"epochs": 2 + i, "lr": 0.01},
            metrics={"served": {"recall@20": 0.1 + 0.01 * i}},
        )
        for i in range(3)
    ]
    return store, versions


def run(store: ModelStore, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["store", *args, "--store", str(store.root)])


def assert_one_line_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_list_shows_versions_metrics_sizes_and_aliases(three):
    store, (v1, v2, v3) = three
    store.promote(v1, "production")
    store.pin(v2)
    result = run(store, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "VERSION",
        "CREATED",
        "(UTC)",
        "DATASET",
        "BITS",
        "METRICS",
        "SIZE",
        "ALIASES",
    ]
    assert lines[1].startswith(f"  {v1}") and lines[1].rstrip().endswith("production")
    assert lines[2].rstrip().endswith("pinned")
    assert lines[3].startswith(f"* {v3}") and "served recall@20=0.1200" in lines[3] and "current" in lines[3]
    assert "gen.csv (20u x 30i)" in lines[1] and "KiB" in lines[1]
    rows = json.loads(run(store, "list", "--json").stdout)
    assert [r["version"] for r in rows] == [v1, v2, v3]
    assert rows[0]["aliases"] == ["production"] and rows[1]["pinned"] and rows[2]["current"]
    assert rows[2]["metrics"]["served"]["recall@20"] == pytest.approx(0.12) and rows[2]["bytes"] > 0


def test_list_of_an_empty_store(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["store", "list", "--store", str(tmp_path / "empty")])
    assert result.exit_code == 0 and "no versions in" in result.stdout


@pytest.mark.parametrize(
    "command", [["list"], ["verify"], ["history"], ["gc", "--keep", "1"], ["unalias", "x"]]
)
def test_a_missing_store_directory_is_an_error_and_stays_missing(tmp_path, command):
    missing = tmp_path / "mistyped"
    result = runner.invoke(app, ["store", *command, "--store", str(missing)])
    assert result.exit_code == 2 and result.stderr == f"error: no store at {missing}: no such directory\n"
    assert not missing.exists()  # a locking command did not create it


def test_list_warns_of_a_version_whose_manifest_is_unreadable(three):
    store, (v1, v2, v3) = three
    (store.root / "versions" / v2 / "manifest.json").write_text("{")
    result = run(store, "list", "--json")
    assert result.exit_code == 0
    assert [row["version"] for row in json.loads(result.stdout)] == [v1, v3]
    assert result.stderr.startswith(f"warning: no readable manifest in {v2}")


def test_show_prints_the_manifest_and_accepts_an_alias(three):
    store, (v1, _, _) = three
    store.promote(v1, "staging")
    result = run(store, "show", "staging")
    assert result.exit_code == 0, result.output
    assert f"version         {v1}" in result.stdout and "aliases         staging" in result.stdout
    assert "  config.epochs" not in result.stdout and "  epochs = 2" in result.stdout
    assert "item_codes.faissindex" in result.stdout
    shown = json.loads(run(store, "show", v1, "--json").stdout)
    assert shown["version"] == v1 and shown["aliases"] == ["staging"] and "files" in shown


def test_verify_all_ok(three):
    store, versions = three
    result = run(store, "verify")
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["ok", v] for v in versions]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("item_embeddings.npy", "item_embeddings.npy fails its sha256 check"),
        ("manifest.json", "manifest.json"),
    ],
)
def test_verify_names_the_damaged_file_and_exits_1(three, target, message):
    store, (v1, v2, v3) = three
    path = store.versions_dir / v2 / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = run(store, "verify")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert {line.split()[1] for line in lines if line.startswith("ok")} == {v1, v3}
    [failed] = [line for line in lines if line.startswith("FAILED")]
    assert v2 in failed and message in failed
    single = run(store, "verify", v2, "--json")
    assert single.exit_code == 1
    [row] = json.loads(single.stdout)
    assert row["ok"] is False and message in row["error"]


def test_promote_rollback_and_history(three):
    store, (v1, v2, v3) = three
    result = run(store, "promote", v1, "--alias", "production")
    assert result.exit_code == 0 and result.stdout.strip() == f"production: (unset) -> {v1}"
    result = run(store, "promote", "production")  # an alias names the version to promote
    assert result.stdout.strip() == f"current: {v3} -> {v1}"
    assert store.current() == v1
    result = run(store, "rollback")
    assert result.exit_code == 0 and result.stdout.strip() == f"current: {v1} -> {v3} (rollback)"
    data = json.loads(run(store, "rollback", "--json").stdout)
    assert data == {"alias": "current", "version": v2, "previous": v3}
    history = run(store, "history")
    assert [line.split()[2] for line in history.stdout.splitlines()] == [
        "publish",
        "publish",
        "publish",
        "promote",
        "rollback",
        "rollback",
    ]
    assert len(json.loads(run(store, "history", "--alias", "production", "--json").stdout)) == 1


def test_pin_unpin_gc_and_delete(three):
    store, (v1, v2, v3) = three
    assert run(store, "pin", v1, "--note", "baseline").stdout.strip() == f"pinned {v1}"
    dry = run(store, "gc", "--keep", "0", "--dry-run")
    assert dry.exit_code == 0 and "would delete" not in dry.stdout  # v2 is the rollback target
    assert f"kept {v1} (pinned)" in dry.stdout and f"kept {v3} (current)" in dry.stdout
    assert f"kept {v2} (rollback target of current)" in dry.stdout
    assert_one_line_error(run(store, "delete", v1), f"refusing to delete {v1}", "pinned")
    assert run(store, "unpin", v1).stdout.strip() == f"unpinned {v1}"
    assert run(store, "unpin", v1).stdout.strip() == f"{v1} was not pinned"
    report = json.loads(run(store, "gc", "--keep", "0", "--json").stdout)
    assert report["deleted"] == [v1] and not report["dry_run"]
    assert [m.version for m in store.list_versions()] == [v2, v3]
    store.promote(v2, "staging")
    assert run(store, "unalias", "staging").stdout.strip() == f"removed alias staging (was {v2})"


def test_diff_shows_config_and_metric_changes(three):
    store, (v1, _, v3) = three
    result = run(store, "diff", v1, v3)
    assert result.exit_code == 0, result.output
    assert f"{v1} -> {v3}: 2 change(s)" in result.stdout
    assert "config.epochs: 2 -> 4 (+2)" in result.stdout
    assert "metrics.served.recall@20: 0.1 -> 0.12 (+0.02)" in result.stdout
    data = json.loads(run(store, "diff", v1, v3, "--json").stdout)
    assert {c["path"] for c in data["changes"]} == {"config.epochs", "metrics.served.recall@20"}


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["show", "v19990101-000000-000000"], ["no version or alias"]),
        (["verify", "nope"], ["no version or alias 'nope'"]),
        (["promote", "../../etc"], ["invalid version name"]),
        (["diff", "a", "b"], ["no version or alias 'a'"]),
        (["pin", "nope"], ["nope"]),
        (["gc", "--keep", "-1"], []),
    ],
)
def test_errors_are_one_line_and_exit_2(three, args, needles):
    store, _ = three
    result = run(store, *args)
    if args[0] == "gc":  # typer's own range check
        assert result.exit_code == 2
        return
    assert_one_line_error(result, *needles)


def test_promote_to_a_bad_alias_and_rollback_without_history(tmp_path, tiny):
    store = ModelStore(tmp_path / "store")
    version = publish_arrays(store, tiny)
    assert_one_line_error(run(store, "promote", version, "--alias", "../x"), "invalid alias name")
    assert_one_line_error(run(store, "rollback"), "no earlier version")
    assert_one_line_error(run(store, "unalias", "current"), "cannot be removed")
