"""The hashrec command line, run in-process with Typer's runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hashrec.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A generated CSV indexed once into a store (tiny, a few epochs)."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data.csv"
    result = runner.invoke(
        app, ["generate", "--out", str(data), "--users", "200", "--items", "150", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    store = root / "store"
    result = runner.invoke(
        app,
        [
            "index",
            "--data",
            str(data),
            "--store",
            str(store),
            "--epochs",
            "3",
            "--dim",
            "16",
            "--bits",
            "64",
            "--batch-size",
            "512",
            "--quiet",
            "--encoder",
            "mf",
        ],
    )
    assert result.exit_code == 0, result.output
    return data, store, json.loads(result.stdout.strip().splitlines()[-1])


def test_help_lists_the_subcommands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("index", "evaluate", "serve", "store", "demo", "generate"):
        assert command in result.stdout


def test_index_prints_one_json_line_with_version_and_metrics(indexed):
    _, store, line = indexed
    assert line["version"].startswith("v")
    for ranking in ("full", "hamming", "served"):
        assert 0.0 <= line["metrics"][ranking]["recall@20"] <= 1.0
    assert (store / "versions" / line["version"] / "manifest.json").is_file()


def test_evaluate_reproduces_the_indexed_metrics(indexed):
    data, store, line = indexed
    result = runner.invoke(app, ["evaluate", "--store", str(store), "--data", str(data)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version"] == line["version"] and report["bits"] == 64 and report["candidates"] == 200
    assert report["same_dataset_as_trained"] is True
    for ranking in ("full", "hamming", "served"):
        assert set(report[ranking]) >= {"recall@20", "ndcg@20", "recall@50", "ndcg@50"}
        assert report[ranking]["recall@20"] == pytest.approx(line["metrics"][ranking]["recall@20"])


def test_store_list_shows_the_current_version(indexed):
    _, store, line = indexed
    result = runner.invoke(app, ["store", "list", "--store", str(store)])
    assert result.exit_code == 0 and f"* {line['version']}" in result.stdout
    rows = json.loads(runner.invoke(app, ["store", "list", "--store", str(store), "--json"]).stdout)
    assert [row["version"] for row in rows if row["current"]] == [line["version"]]


def test_malformed_data_exits_2_with_one_line_naming_file_and_line(tmp_path):
    bad = tmp_path / "train.txt"
    bad.write_text("0 1 2\n1 x 3\n")
    result = runner.invoke(
        app, ["index", "--data", str(bad), "--store", str(tmp_path / "s"), "--format", "lightgcn", "--quiet"]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.txt:2" in lines[0] and lines[0].startswith("error:")


def test_missing_store_exits_2(tmp_path, indexed):
    data, _, _ = indexed
    result = runner.invoke(app, ["evaluate", "--store", str(tmp_path / "none"), "--data", str(data)])
    assert result.exit_code == 2 and "no current version" in result.stderr


def test_bad_bits_exit_2(tmp_path, indexed):
    data, _, _ = indexed
    result = runner.invoke(app, ["index", "--data", str(data), "--store", str(tmp_path), "--bits", "12"])
    assert result.exit_code == 2 and "multiple of 8" in result.stderr


def test_unknown_quantizer_exits_2_naming_the_choices(tmp_path, indexed):
    data, _, _ = indexed
    args = ["index", "--data", str(data), "--store", str(tmp_path), "--quantizer", "pq"]
    result = runner.invoke(app, args)
    assert (
        result.exit_code == 2 and "--quantizer must be one of" in result.stderr and "hqgnn" in result.stderr
    )


def test_spectral_power_is_recorded_and_refused_for_trained_encoders(tmp_path, indexed):
    data, _, _ = indexed
    store = tmp_path / "store"
    args = ["index", "--data", str(data), "--store", str(store), "--dim", "16", "--spectral-power", "1"]
    result = runner.invoke(app, [*args, "--bits", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(next((store / "versions").glob("*/manifest.json")).read_text())
    assert manifest["config"]["spectral_power"] == 1.0
    assert manifest["config"]["encoder_config"]["history"][-1]["power"] == 1.0
    refused = runner.invoke(app, [*args, "--encoder", "mf"])
    assert refused.exit_code == 2 and "--spectral-power applies to --encoder gfcf only" in refused.stderr


@pytest.mark.parametrize("quantizer", ["itq", "hashgnn", "hqgnn"])
def test_index_with_each_published_quantizer_records_it(tmp_path, indexed, quantizer):
    data, _, _ = indexed
    store = tmp_path / "store"
    args = ["index", "--data", str(data), "--store", str(store), "--encoder", "gfcf", "--dim", "16"]
    result = runner.invoke(app, [*args, "--bits", "32", "--quantizer", quantizer, "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(next((store / "versions").glob("*/manifest.json")).read_text())
    assert manifest["config"]["quantizer"]["quantizer"] == quantizer
    served = json.loads(result.stdout.strip().splitlines()[-1])["metrics"]["served"]["recall@20"]
    assert 0.0 < served <= 1.0


@pytest.mark.parametrize(
    "content",
    [b"", b"0 1 2\n1 2 3\n\xff\xfe\n", b"0 1\n" + b"1 " * 200_000 + b"x\n", b"\x1f\x8b\x08\x00trunc"],
    ids=["empty", "bad-utf8", "huge-line", "truncated-gzip"],
)
def test_bad_data_never_leaves_a_partial_artifact(tmp_path, content):
    bad = tmp_path / "train.txt"
    bad.write_bytes(content)
    store = tmp_path / "store"
    result = runner.invoke(
        app, ["index", "--data", str(bad), "--store", str(store), "--format", "lightgcn", "--quiet"]
    )
    assert result.exit_code == 2 and result.stderr.startswith("error:") and "Traceback" not in result.output
    assert not (store / "versions").exists() or not any((store / "versions").iterdir())


def backed_by_a_file(array) -> bool:
    import mmap

    while array is not None and not isinstance(array, mmap.mmap):
        array = getattr(array, "base", None)
    return array is not None


@pytest.mark.parametrize(("flag", "dtype"), [("--rerank-float16", "float16"), ("--rerank-int8", "int8")])
def test_smaller_rerank_vectors_are_published_and_mmapped_by_the_service(tmp_path, indexed, flag, dtype):
    import numpy as np
    from hashrec.model_store import ModelStore
    from hashrec.retrieval.model import ServingModel
    from hashrec.retrieval.search import two_stage_searcher

    data, _, _ = indexed
    store = tmp_path / "store"
    args = ["index", "--data", str(data), "--store", str(store), "--encoder", "gfcf", "--dim", "16"]
    result = runner.invoke(app, [*args, "--bits", "32", flag, "--quiet"])
    assert result.exit_code == 0, result.output
    artifact = ModelStore(store).open()
    small = ServingModel.from_artifact(artifact, rerank_dtype=dtype)
    f32 = ServingModel.from_artifact(artifact)
    assert small.rerank_items.dtype == np.dtype(dtype)
    assert backed_by_a_file(small.rerank_items)  # the published array, not a per-worker copy
    if dtype == "float16":
        assert np.allclose(small.rerank_items, f32.item_embeddings, atol=1e-3)
    else:
        dequantized = small.rerank_items.astype(np.float32) * small.rerank_scale
        assert np.all(np.abs(dequantized - f32.item_embeddings) <= small.rerank_scale / 2 + 1e-6)
    users = np.arange(f32.n_users)
    a = two_stage_searcher(f32, candidates=50).search_users(users, 10).items
    b = two_stage_searcher(small, candidates=50).search_users(users, 10).items
    assert np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]) >= 0.95


def test_generate_creates_the_parent_directory(tmp_path):
    out = tmp_path / "data" / "nested" / "generated.csv"
    result = runner.invoke(app, ["generate", "--out", str(out), "--users", "50", "--items", "40"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("user,item,split\n")
    assert [p.name for p in out.parent.iterdir()] == ["generated.csv"]  # no partial file left


def test_generate_into_an_unwritable_place_exits_2_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["generate", "--out", str(blocker / "x.csv")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write") and result.stderr.count("\n") == 1


@pytest.mark.parametrize(("given", "expected"), [([], "cores"), (["--workers", "3"], 3)])
def test_serve_runs_one_worker_per_usable_core_by_default(tmp_path, indexed, monkeypatch, given, expected):
    import os

    import uvicorn

    from hashrec.cli import usable_cores

    _, store, _ = indexed
    for name in ("HASHREC_STORE", "HASHREC_LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.setenv(name, str(tmp_path))  # restored afterwards; serve writes these
    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: captured.update(kwargs))
    result = runner.invoke(app, ["serve", "--store", str(store), *given])
    assert result.exit_code == 0, result.output
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cores() == cores
    assert captured["workers"] == (cores if expected == "cores" else expected)


@pytest.fixture
def captured_serve(tmp_path, monkeypatch):
    """``hashrec serve`` with uvicorn.run replaced: returns the store each worker would open."""
    import os

    import uvicorn

    for name in ("HASHREC_STORE", "HASHREC_LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)  # restored afterwards; serve writes these
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)

    def serve(args, env=None):
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        result = runner.invoke(app, ["serve", "--workers", "1", *args])
        return result, os.environ.get("HASHREC_STORE")

    return serve


@pytest.mark.parametrize("url", ["s3://models/hashrec", "s3://models/hashrec/"])
def test_serve_passes_an_s3_store_to_the_workers_as_its_url(captured_serve, url):
    result, store = captured_serve(["--store", url])
    assert result.exit_code == 0, result.output
    assert store == "s3://models/hashrec"  # not a local path such as ./s3:/models/hashrec


def test_serve_reads_hashrec_store_and_passes_a_directory_as_an_absolute_path(
    captured_serve, tmp_path, monkeypatch
):
    result, store = captured_serve([], env={"HASHREC_STORE": "s3://bucket/from-env"})
    assert result.exit_code == 0, result.output
    assert store == "s3://bucket/from-env"
    monkeypatch.chdir(tmp_path)
    result, store = captured_serve(["--store", "relative-store"])
    assert result.exit_code == 0, result.output
    assert store == str(tmp_path / "relative-store")


def test_serve_refuses_an_unsupported_store_url_in_one_line(captured_serve):
    result, _ = captured_serve(["--store", "ftp://host/store"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unsupported store URL") and result.stderr.count("\n") == 1


def test_index_and_evaluate_read_the_store_from_hashrec_store(indexed, tmp_path, monkeypatch):
    data, _, _ = indexed
    store = tmp_path / "from-env"
    monkeypatch.setenv("HASHREC_STORE", str(store))
    args = ["--data", str(data), "--epochs", "1", "--dim", "8", "--bits", "32", "--quiet", "--encoder", "mf"]
    result = runner.invoke(app, ["index", *args])
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout.strip().splitlines()[-1])["version"]
    assert (store / "versions" / version / "manifest.json").is_file()
    result = runner.invoke(app, ["evaluate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["version"] == version


@pytest.mark.parametrize(
    "rows",
    [
        [("u1", f"i{i}") for i in range(18)],  # one user, fewer items than the top-20 teacher and metrics
        [("u1", "i1")],  # one interaction: one user, one item, nothing to hold out
    ],
    ids=["18-items", "one-interaction"],
)
@pytest.mark.parametrize("quantizer", ["learned", "sign"])
def test_index_handles_catalogues_smaller_than_k(tmp_path, rows, quantizer):
    data = tmp_path / "tiny.csv"
    data.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    args = ["index", "--data", str(data), "--store", str(tmp_path / "s"), "--quantizer", quantizer, "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])["metrics"]
    assert metrics["served"]["users"] == metrics["full"]["users"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "--data", "x.csv", "--bits", "0"], "error: Invalid value for '--bits'"),
        (["index", "--frobnicate"], "error: No such option: --frobnicate"),
        (["index"], "error: Missing option '--data'"),
        (["generate", "--out", "g.csv", "--users", "abc"], "error: Invalid value for '--users'"),
        (["store", "gc", "--keep", "-1"], "error: Invalid value for '--keep'"),
        (["serve", "--port", "70000"], "error: Invalid value for '--port'"),
        (["no-such-command"], "error: No such command 'no-such-command'"),
    ],
)
def test_usage_errors_end_in_one_line_and_exit_2(capsys, args, message):
    from hashrec.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_the_entry_point_keeps_exit_codes_and_help(capsys, tmp_path):
    from hashrec.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--out", str(tmp_path / "g.csv"), "--users", "5", "--items", "5"])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["index", "--data", str(tmp_path / "missing.csv"), "--store", str(tmp_path / "s")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "index" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HASHREC_OVERSAMPLE", "0", "greater than or equal to 1"),
        ("HASHREC_CACHE_TTL_S", "abc", "valid number"),
        ("HASHREC_RERANK_DTYPE", "bogus", "'float32', 'float16' or 'int8'"),
        ("HASHREC_HAMMING_KERNEL", "simd", "'auto', 'faiss' or 'numba'"),
    ],
)
def test_serve_names_the_invalid_setting_in_one_line(captured_serve, variable, value, message):
    result, _ = captured_serve([], env={variable: value})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {variable}={value!r}: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_serve_refuses_an_unknown_log_level_in_one_line(captured_serve):
    result, _ = captured_serve(["--log-level", "bogus"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --log-level: 'bogus' is not one of critical")
    result, _ = captured_serve(["--log-level", "DEBUG"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("a-file", "a-file is not a directory"),
        ("a-file/sub", "a-file is not a directory"),
        ("", "the store location is empty"),
    ],
)
def test_index_refuses_an_unusable_store_before_training(indexed, tmp_path, monkeypatch, store, message):
    data, _, _ = indexed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a store")
    result = runner.invoke(app, ["index", "--data", str(data), "--store", store, "--quiet"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written anywhere


def test_index_and_evaluate_name_a_store_whose_package_is_missing(indexed):
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401

        pytest.skip("gcsfs is installed: gs:// works here")
    except ImportError:
        pass
    data, _, _ = indexed
    for command in (["index"], ["evaluate"]):
        result = runner.invoke(app, [*command, "--data", str(data), "--store", "gs://bucket/p"])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert "gcsfs" in result.stderr


@pytest.mark.parametrize("device", ["bogus", "gpu", "cuda:x"])
def test_index_refuses_an_unknown_device(indexed, tmp_path, device):
    data, _, _ = indexed
    result = runner.invoke(app, ["index", "--data", str(data), "--store", str(tmp_path), "--device", device])
    assert result.exit_code == 2 and result.stderr.startswith("error: --device must be auto, cpu, cuda")


def test_index_on_cuda_without_a_gpu_says_so_in_one_line(indexed, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    data, _, _ = indexed
    result = runner.invoke(app, ["index", "--data", str(data), "--store", str(tmp_path), "--device", "cuda"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "sees no CUDA device" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", ""], "error: --out names no file"),
        (["--out", "g.parquet"], "error: --out g.parquet: generate writes CSV"),
        (["--out", "g.csv", "--seed", "-1"], "error: Invalid value for '--seed'"),
    ],
)
def test_generate_refuses_what_it_cannot_write_in_one_line(tmp_path, monkeypatch, capsys, args, message):
    from hashrec.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_index_and_evaluate_warn_when_nothing_can_be_measured(tmp_path, indexed):
    data = tmp_path / "no-test.csv"
    data.write_text("user,item,split\nu1,i1,train\nu1,i2,train\nu2,i1,train\n")
    store = tmp_path / "s"
    result = runner.invoke(app, ["index", "--data", str(data), "--store", str(store), "--quiet"])
    assert result.exit_code == 0 and "the test split is empty" in result.stderr
    _, other_store, _ = indexed  # a model whose ids this data does not share
    result = runner.invoke(app, ["evaluate", "--data", str(data), "--store", str(other_store)])
    assert result.exit_code == 0 and "nothing was measured" in result.stderr


def test_serve_refuses_a_store_that_can_never_become_ready(captured_serve, tmp_path, monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store")
    result, _ = captured_serve(["--store", str(a_file)])
    assert result.exit_code == 2 and result.stderr == f"error: store {a_file}: not a directory\n"
    result, _ = captured_serve(["--store", str(tmp_path / "empty")], env={"HASHREC_VERSION": "../x"})
    assert result.exit_code == 2 and result.stderr.startswith("error: HASHREC_VERSION='../x': invalid")
    monkeypatch.delenv("HASHREC_VERSION")
    result, _ = captured_serve(["--store", str(tmp_path / "not-yet")])  # waits for a first version
    assert result.exit_code == 0, result.output


def test_serve_refuses_an_unusable_redis_url_in_one_line(captured_serve, tmp_path):
    """It used to log a traceback in every worker and exit 0."""
    for url in ("notaurl", "http://cache:6379", "redis//x"):
        result, _ = captured_serve(["--store", str(tmp_path)], env={"HASHREC_REDIS_URL": url})
        assert result.exit_code == 2, (url, result.output)
        assert (
            result.stderr.startswith(f"error: HASHREC_REDIS_URL={url!r}: ") and result.stderr.count("\n") == 1
        )


def test_serve_resolves_hashrec_version_or_refuses_it_in_one_line(captured_serve, tmp_path, monkeypatch):
    """A version the store does not hold used to serve 'not ready' forever; an alias was never
    resolved."""
    from hashrec.model_store import ModelStore

    from tests.conftest import planted_arrays, publish_arrays

    store = ModelStore(tmp_path / "store")
    version = publish_arrays(store, planted_arrays(n_users=20, n_items=30))
    store.promote(version, "production")
    for name in (version, "production"):
        result, _ = captured_serve(["--store", str(store.root)], env={"HASHREC_VERSION": name})
        assert result.exit_code == 0, result.output
    result, _ = captured_serve(["--store", str(store.root)], env={"HASHREC_VERSION": "nope"})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: HASHREC_VERSION='nope': no version or alias 'nope'")


def test_evaluate_refuses_a_version_whose_arrays_miss_its_layout_in_one_line(tmp_path):
    """Checksums match, but config.layout says walk and the walk arrays are absent: exit 2, one line."""
    from hashrec.indexer.data import generate_interactions, write_interactions_csv
    from hashrec.model_store import ModelStore

    from tests.conftest import planted_arrays, publish_arrays

    data = tmp_path / "data.csv"
    write_interactions_csv(generate_interactions(n_users=50, n_items=40, seed=1), data)
    store = ModelStore(tmp_path / "store")
    publish_arrays(store, planted_arrays(n_users=50, n_items=40), config={"layout": "walk", "walk": {}})
    result = runner.invoke(app, ["evaluate", "--store", str(store.root), "--data", str(data)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "has no array 'item_users_indptr'" in result.output
    assert len(result.output.strip().splitlines()) == 1
