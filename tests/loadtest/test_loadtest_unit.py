"""The load test's pieces without a service: host check, options, answer checks, sampling, parsing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter

import pytest
from hashrec.loadtest import run as lt
from hashrec.loadtest.checks import check_batch, check_recommend, check_similar
from hashrec.loadtest.config import parse_mix, parse_run_time
from hashrec.loadtest.id_pool import IdPool, ZipfSampler
from typer.testing import CliRunner

from hashrec.cli import app


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.3.4.5", "http://localhost:9/", "https://[::1]:8443"]
)
def test_loopback_hosts_are_accepted(url):
    assert lt.check_host(url, allow_remote=False) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3:8000", "http://192.168.0.10", "http://example.com", "http://[2001:db8::1]:80"]
)
def test_remote_hosts_are_refused_unless_allowed(url):
    with pytest.raises(lt.LoadTestError, match="not a loopback address"):
        lt.check_host(url, allow_remote=False)
    assert lt.check_host(url, allow_remote=True) == url


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8000", "http://127.0.0.1:8000/v1/recommend"])
def test_malformed_hosts_are_refused(url):
    with pytest.raises(lt.LoadTestError):
        lt.check_host(url, allow_remote=True)


def test_cli_refuses_a_remote_host_before_any_request(monkeypatch, tmp_path):
    def no_traffic(*args, **kwargs):
        raise AssertionError("the refused host was contacted")

    monkeypatch.setattr(lt, "wait_ready", no_traffic)
    monkeypatch.setattr(lt, "_get", no_traffic)
    result = CliRunner().invoke(
        app, ["loadtest", "--host", "http://10.20.30.40:8000", "--run-time", "5s", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to load-test 10.20.30.40")
    assert "--allow-remote" in lines[0]
    assert not any(tmp_path.iterdir())


def test_cli_names_a_bad_option(tmp_path):
    result = CliRunner().invoke(app, ["loadtest", "--mix", "recommend=1,browse=2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "browse" in result.output
    result = CliRunner().invoke(app, ["loadtest", "--run-time", "soon", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "run-time" in result.output


def test_mix_and_run_time_parsing():
    assert parse_mix("recommend=8, batch=1,similar=0") == {"recommend": 8.0, "batch": 1.0, "similar": 0.0}
    for bad in ("recommend", "recommend=x", "batch=-1", "recommend=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)
    assert [parse_run_time(t) for t in ("30", "30s", "2m", "1h30m")] == [30, 30, 120, 5400]
    for bad in ("", "0s", "3x", "1.5m", "m"):
        with pytest.raises(ValueError):
            parse_run_time(bad)


def test_zipf_draws_are_skewed_toward_the_first_ranks():
    sampler = ZipfSampler.build([f"u{i}" for i in range(100)], s=1.1)
    rng = random.Random(0)
    counts = Counter(sampler.draw(rng) for _ in range(20_000))
    assert counts["u0"] > 5 * counts["u9"] > 0
    assert counts["u0"] / 20_000 > 0.15  # uniform would give 0.01
    flat = ZipfSampler.build([f"u{i}" for i in range(4)], s=0.0)
    assert set(Counter(flat.draw(rng) for _ in range(4000)).values()) <= set(range(850, 1150))


def _pool() -> IdPool:
    users = ZipfSampler.build(["u1", "u2"], 1.0)
    items = ZipfSampler.build(["i1", "i2", "i3", "i4"], 1.0)
    return IdPool(version="v1", n_items=4, users=users, items=items, seen_count={"u1": 1, "u2": 3})


def _answer(user, fallback, items, version="v1"):
    return {
        "user_id": user,
        "model_version": version,
        "cached": False,
        "fallback": fallback,
        "items": [{"item_id": i, "score": s} for i, s in items],
    }


def test_right_answers_pass_the_checks():
    pool = _pool()
    assert check_recommend(_answer("u1", False, [("i2", 3.0), ("i3", 1.0)]), pool, "u1", True, 2) is None
    # u2 has seen 3 of the 4 items: one item is all it can get
    assert check_recommend(_answer("u2", False, [("i4", 1.0)]), pool, "u2", True, 2) is None
    assert (
        check_recommend(_answer("ghost", True, [("i1", 9.0), ("i2", 5.0)]), pool, "ghost", False, 2) is None
    )
    batch = {
        "model_version": "v1",
        "results": [_answer("u1", False, [("i2", 3.0)]), _answer("x", True, [("i1", 2.0)])],
    }
    assert check_batch(batch, pool, ["u1", "x"], [True, False], 1) is None
    similar = {"item_id": "i1", "model_version": "v1", "items": [{"item_id": "i2", "score": 0.9}]}
    assert check_similar(similar, pool, "i1", 1) is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (_answer("u1", False, [("i2", 3.0)]), "1 returned, expected 2"),
        (_answer("u1", True, [("i2", 3.0), ("i3", 1.0)]), "fallback"),
        (_answer("u1", False, [("i2", 3.0), ("i2", 1.0)]), "duplicate"),
        (_answer("u1", False, [("i2", 1.0), ("i3", 3.0)]), "descending"),
        (_answer("u9", False, [("i2", 3.0), ("i3", 1.0)]), "another user"),
        ({**_answer("u1", False, [("i2", 3.0), ("i3", 1.0)]), "model_version": ""}, "model_version"),
        (_answer("u1", False, [("i2", 3.0), ("i3", "x")]), "numeric score"),
    ],
)
def test_wrong_answers_fail_the_checks(answer, reason):
    found = check_recommend(answer, _pool(), "u1", True, 2)
    assert found is not None and reason in found


def test_a_user_with_few_unseen_items_gets_fewer():
    assert "expected 1" in check_recommend(
        _answer("u2", False, [("i2", 3.0), ("i3", 1.0)]), _pool(), "u2", True, 2
    )


def test_other_versions_get_structural_checks_only():
    # after a hot reload the fallback flag and the counts may legitimately differ
    answer = _answer("u1", True, [("i2", 3.0)], version="v2")
    assert check_recommend(answer, _pool(), "u1", True, 2) is None
    assert check_recommend(_answer("u1", True, [("i2", 1.0), ("i2", 0.5)], "v2"), _pool(), "u1", True, 2)


def test_wrong_batch_and_similar_answers_fail():
    pool = _pool()
    short = {"model_version": "v1", "results": [_answer("u1", False, [("i2", 3.0)])]}
    assert "results" in check_batch(short, pool, ["u1", "x"], [True, False], 1)
    own = {"item_id": "i1", "model_version": "v1", "items": [{"item_id": "i1", "score": 1.0}]}
    assert "query item" in check_similar(own, pool, "i1", 1)
    few = {"item_id": "i1", "model_version": "v1", "items": [{"item_id": "i2", "score": 1.0}]}
    assert "expected 3" in check_similar(few, pool, "i1", 5)


def test_cache_counters_from_prometheus_text():
    text = (
        "# HELP hashrec_cache_total Answer cache lookups.\n"
        '# TYPE hashrec_cache_total counter\nhashrec_cache_total{result="hit"} 12.0\n'
        'hashrec_cache_total{result="miss"} 3.0\nhashrec_cache_created{result="hit"} 1.7e9\n'
    )
    assert lt.cache_counters(text) == {"hit": 12.0, "miss": 3.0}
    assert lt._cache_delta({"hit": 12.0, "miss": 3.0}, {"hit": 20.0, "miss": 5.0})["hit_ratio"] == 0.8
    assert "error" in lt._cache_delta("GET /metrics answered 404", {"hit": 1.0, "miss": 0.0})


def test_percentiles_follow_locusts_rule():
    """Same numbers as locust.stats.calculate_response_time_percentile (run apart: it patches gevent)."""
    times = {5.0: 50, 10.0: 40, 100.0: 9, 900.0: 1, 3.0: 7}
    percents = (0.5, 0.66, 0.95, 0.99, 0.999, 1.0)
    ours = [lt.percentile(times, 107, p) for p in percents]
    code = (
        "import json, sys; from locust.stats import calculate_response_time_percentile as f; "
        f"t = {{int(k): v for k, v in {times!r}.items()}}; "
        f"print(json.dumps([f(t, 107, p) for p in {percents!r}]))"
    )
    theirs = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    assert ours == [float(x) for x in theirs]
    assert lt.percentile({}, 0, 0.5) is None
