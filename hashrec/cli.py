"""The ``hashrec`` command line. Heavy imports (torch, fastapi) happen inside the commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from hashrec.cli_support import StoreOpt, check_store_writable, emit, fail, parse_store, store_location
from hashrec.loadtest_cli import loadtest
from hashrec.store_cli import store_app

if TYPE_CHECKING:
    from hashrec.indexer.config import CompressionMethod, EncoderName
    from hashrec.indexer.quantizers import QuantizerName
    from hashrec.retrieval.query_codes import Transform

app = typer.Typer(
    help="hashrec: train hash codes, publish versioned indexes, serve top-K.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(store_app, name="store")
app.command()(loadtest)

DataOpt = Annotated[Path, typer.Option("--data", help="Interactions: file or directory.")]
FormatOpt = Annotated[str, typer.Option("--format", help="auto, lightgcn, movielens, csv, parquet.")]
SplitOpt = Annotated[str, typer.Option("--split", help="auto, files, random, temporal.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build: noise here


def _load_data(path: Path, fmt: str, split: str, test_fraction: float, seed: int):  # type: ignore[no-untyped-def]
    from hashrec.indexer.data import DataError, load_interactions

    try:
        return load_interactions(path, format=fmt, split=split, test_fraction=test_fraction, seed=seed)
    except DataError as err:
        fail(str(err))


@app.command()
def index(
    data: DataOpt,
    store: StoreOpt = "store",
    fmt: FormatOpt = "auto",
    split: SplitOpt = "auto",
    test_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
    encoder: Annotated[
        str,
        typer.Option(
            help="gfcf (closed-form graph filter), walk (compact: a graph walk, no vectors), lightgcn or mf."
        ),
    ] = "gfcf",
    dim: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=4096,
            help="Default: 64; gfcf chooses its rank on a holdout; walk: its codes' feature rank (1,536).",
        ),
    ] = None,
    spectral_power: Annotated[
        float | None,
        typer.Option(min=0.0, max=4.0, help="gfcf spectral weight exponent; default: chosen on a holdout."),
    ] = None,
    layers: Annotated[int, typer.Option(min=0, max=8, help="LightGCN layers.")] = 3,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (lightgcn, mf).")] = 30,
    batch_size: Annotated[int, typer.Option(min=0, help="0: about 50 steps per epoch.")] = 0,
    lr: Annotated[float, typer.Option(min=0.0, help="0: 1e-2 for LightGCN, 5e-3 for MF.")] = 0.0,
    reg: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    compression: Annotated[
        str,
        typer.Option(
            help="Embedding tables: full, hash, double, frequency, double-frequency, qr, graphhash, "
            "double-graphhash, graphhash-plus, learned."
        ),
    ] = "full",
    budget: Annotated[
        float, typer.Option(min=0.0, help="Table rows: fraction of users + items if <= 1, else a count.")
    ] = 1.0,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="0 disables early stopping.")] = 0.05,
    bits: Annotated[int, typer.Option(min=8, max=4096, help="Code length, multiple of 8.")] = 128,
    quantizer: Annotated[
        str,
        typer.Option(
            help="learned (distils the model's ranking), sign (random projection), itq, hashgnn, hqgnn, "
            "learned-gste."
        ),
    ] = "learned",
    code_transform: Annotated[str, typer.Option(help="mips or rotation (sign quantizer).")] = "mips",
    candidates: Annotated[int, typer.Option(min=1, help="C used to evaluate the served ranking.")] = 200,
    rerank_float16: Annotated[
        bool,
        typer.Option(help="Also publish float16 rerank vectors (HASHREC_RERANK_DTYPE=float16 mmaps them)."),
    ] = False,
    rerank_int8: Annotated[
        bool, typer.Option(help="Also publish int8 rerank vectors (HASHREC_RERANK_DTYPE=int8 mmaps them).")
    ] = False,
    seed: int = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option(help="No progress bars or logs.")] = False,
) -> None:
    """Train, evaluate on the test split, publish a version; print one JSON line."""
    _setup_logging(not quiet)
    from hashrec.indexer.config import (
        CompressionConfig,
        EncoderConfig,
        IndexConfig,
        QuantizerConfig,
        ServingConfig,
    )

    try:  # the configs check every option once; their messages name the option
        cfg = IndexConfig(
            encoder=EncoderConfig(
                name=cast("EncoderName", encoder),
                dim=dim or 0,
                spectral_power=spectral_power,
                layers=layers,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                reg=reg,
                val_fraction=val_fraction,
            ),
            compression=CompressionConfig(method=cast("CompressionMethod", compression), budget=budget),
            quantizer=QuantizerConfig(
                name=cast("QuantizerName", quantizer), bits=bits, transform=cast("Transform", code_transform)
            ),
            serving=ServingConfig(
                candidates=candidates, rerank_float16=rerank_float16, rerank_int8=rerank_int8
            ),
            seed=seed,
            device=device,
            progress=not quiet,
        )
    except ValueError as err:
        fail(str(err))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            fail(f"--device {device}: torch {torch.__version__} sees no CUDA device")
    check_store_writable(store)
    from hashrec.indexer.pipeline import build_index
    from hashrec.model_store import ModelStore, StoreError

    interactions = _load_data(data, fmt, split, test_fraction, seed)
    if interactions.test.nnz == 0:
        typer.echo(f"warning: {data}: the test split is empty, so no metric is measured", err=True)
    n_ids = interactions.n_users + interactions.n_items
    if budget > n_ids:
        fail(f"--budget {budget:g} rows exceeds the {n_ids} users + items")
    data_options = {
        "path": str(data),
        "format": fmt,
        "split": split,
        "test_fraction": test_fraction,
        "seed": seed,
    }
    try:
        result = build_index(interactions, ModelStore(store), cfg, data_options=data_options)
    except StoreError as err:
        fail(str(err))
    except OSError as err:  # the store's filesystem refused the write
        fail(f"store {store}: {err}")
    emit(result)


@app.command()
def evaluate(
    data: DataOpt,
    store: StoreOpt = "store",
    version: Annotated[str | None, typer.Option(help="Default: the current version.")] = None,
    candidates: Annotated[int | None, typer.Option(min=1, help="Default: as indexed.")] = None,
    fmt: FormatOpt = "auto",
    split: Annotated[str | None, typer.Option("--split", help="Default: as indexed.")] = None,
) -> None:
    """Evaluate a published version on the data's test split; print one JSON object."""
    _setup_logging(False)
    from hashrec.indexer.evaluation import align_to_model, evaluate_model
    from hashrec.model_store import ModelStore, StoreError
    from hashrec.retrieval.model import ServingModel

    try:
        artifact = ModelStore(store).open(version)
    except StoreError as err:
        fail(str(err))
    except OSError as err:
        fail(f"store {store}: {err}")
    options = artifact.manifest.dataset.get("options", {})
    interactions = _load_data(
        data,
        fmt,
        split or options.get("split", "auto"),
        options.get("test_fraction", 0.2),
        options.get("seed", 0),
    )
    try:  # the arrays are checked against the version's layout here
        model = ServingModel.from_artifact(artifact)
    except StoreError as err:
        fail(str(err))
    test, dropped = align_to_model(model, interactions.user_ids, interactions.item_ids, interactions.test)
    c = candidates or int(artifact.manifest.config.get("candidates", 200))
    metrics = evaluate_model(model, test, candidates=c, ks=(20, 50))
    same = interactions.fingerprint() == artifact.manifest.dataset.get("fingerprint")
    if not test.nnz:
        typer.echo(
            f"warning: no test pair of {data} names a user and an item of {artifact.version}; "
            "nothing was measured",
            err=True,
        )
    emit(
        {
            "version": artifact.version,
            **metrics,
            "test_pairs_unknown_to_model": dropped,
            "same_dataset_as_trained": same,
        }
    )


def _check_servable(store: Path, version: str | None) -> None:
    """Exit with one line where the service could never become ready: a store path that is a file,
    or a version name the store cannot hold. An empty or missing store is fine: the service waits
    for a first version."""
    from hashrec.model_store import StoreError
    from hashrec.model_store.names import check_name

    _, path = parse_store(store)
    if path is not None and path.exists() and not path.is_dir():
        fail(f"store {path}: not a directory")
    if version is not None:
        from hashrec.model_store import ModelStore

        try:
            check_name(version, "version or alias")
            ModelStore(store).resolve(version)  # a version name or an alias the store holds now
        except StoreError as err:
            fail(f"HASHREC_VERSION={version!r}: {err}")


#: Log levels of the service (``Settings.log_level``) and of uvicorn.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@app.command()
def serve(
    store: StoreOpt = "store",
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=0, max=64, help="Worker processes; 0: one per CPU core this process may use (measured best)."
        ),
    ] = 0,
    log_level: Annotated[
        str, typer.Option(help=f"Level of the service's logs: {', '.join(LOG_LEVELS)}.")
    ] = "info",
) -> None:
    """Serve the store's current version over HTTP (other settings: HASHREC_* variables)."""
    import os
    import tempfile

    import uvicorn

    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    log_level = log_level.lower()
    from hashrec.service.logs import configure_logging  # no prometheus_client: the parent has no metrics

    workers = workers or usable_cores()
    # Settings travel to every worker through the environment; the factory reads them there.
    os.environ["HASHREC_STORE"] = store_location(store)
    os.environ["HASHREC_LOG_LEVEL"] = log_level
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hashrec-metrics-")
    from pydantic import ValidationError

    from hashrec.service.settings import Settings

    try:
        settings = Settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = "HASHREC_" + "_".join(str(part) for part in first["loc"][:1]).upper()
        fail(f"{name}={os.environ.get(name, '')!r}: {first['msg']}")
    _check_servable(settings.store, settings.version)
    configure_logging(log_level)  # the parent (the workers' supervisor) logs JSON, as the workers do
    try:  # uvicorn's httptools protocol with a whole-request read timeout (service/connections.py)
        import httptools  # noqa: F401

        http = "hashrec.service.connections:TimedHttpToolsProtocol"
    except ImportError:
        http = "auto"
    uvicorn.run(
        "hashrec.service.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        log_config=None,
        http=http,
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.limit_concurrency,
    )


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (user,item,split).")],
    users: Annotated[int, typer.Option(min=2)] = 2000,
    items: Annotated[int, typer.Option(min=2)] = 1000,
    communities: Annotated[int, typer.Option(min=1)] = 8,
    mean_items: Annotated[float, typer.Option(min=2.0)] = 20.0,
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Write a generated interaction log (latent communities, long-tailed popularity)."""
    if not out.name:
        fail("--out names no file")
    if not out.name.lower().endswith((".csv", ".csv.gz")):
        fail(f"--out {out}: generate writes CSV; name the file .csv or .csv.gz")
    from hashrec.indexer.data import generate_interactions, write_interactions_csv

    data = generate_interactions(
        n_users=users, n_items=items, n_communities=communities, mean_items_per_user=mean_items, seed=seed
    )
    try:
        write_interactions_csv(data, out)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    emit(
        {
            "path": str(out),
            "users": data.n_users,
            "items": data.n_items,
            "train": int(data.train.nnz),
            "test": int(data.test.nnz),
        }
    )


@app.command()
def demo(
    store: Annotated[Path, typer.Option(help="Local directory of the demo's store.")] = Path("demo-store"),
    data: Annotated[Path | None, typer.Option(help="Default: a generated dataset.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Generate data (or read --data), index it, publish, then serve on host:port."""
    if data is None:
        data = store.parent / f"{store.name}-data.csv"
        store.parent.mkdir(parents=True, exist_ok=True)
        generate(out=data, users=3000, items=2000, communities=12, mean_items=15.0, seed=0)
    index(data=data, store=str(store), epochs=epochs, quiet=True)
    from hashrec.loadtest.id_pool import id_strings
    from hashrec.model_store import ModelStore

    first_user = id_strings(ModelStore(store).open().array("user_ids")[:1])[0]
    typer.echo(
        f"try: curl -s -X POST http://{host}:{port}/v1/recommend "
        f'-H \'content-type: application/json\' -d \'{{"user_id": "{first_user}", "k": 5}}\'',
        err=True,
    )
    if serve_after:
        serve(store=str(store), host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. A usage error (a bad option value, an unknown option) ends in
    one ``error:`` line and exit code 2, like every other bad input, not Click's usage box."""
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.Abort:  # Ctrl-C
        typer.echo("error: aborted", err=True)
        raise SystemExit(130) from None
    except typer.TyperException as err:  # Click's exceptions, as Typer vendors them
        if type(err).__name__ == "NoArgsIsHelpError":  # a bare command or group: its help, as before
            err.show()  # type: ignore[attr-defined]
            raise SystemExit(2) from None
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        typer.echo(f"error: {' '.join(message.split())}", err=True)  # outside the app: no fail()
        raise SystemExit(getattr(err, "exit_code", 2)) from None
    raise SystemExit(code if isinstance(code, int) else 0)
