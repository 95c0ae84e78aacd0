"""Service settings, read from HASHREC_* environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: URL schemes redis-py's ``from_url`` accepts
REDIS_SCHEMES = ("redis", "rediss", "unix")


class Settings(BaseSettings):
    """Every knob of the service; ``HASHREC_<NAME>`` sets ``<name>``."""

    model_config = SettingsConfigDict(env_prefix="HASHREC_", extra="ignore")

    store: Path = Field(Path("store"), description="Model store: a directory or s3://bucket/prefix.")
    version: str | None = Field(None, description="Serve this version instead of following current.")
    poll_interval_s: float = Field(5.0, ge=0, description="Check the store for a new current; 0: never.")
    oversample: int = Field(10, ge=1, le=1000, description="Hamming candidates C = k * oversample.")
    max_candidates: int = Field(
        5000, ge=1, le=10_000, description="Upper bound on C; a larger `candidates` is a 422."
    )
    max_k: int = Field(1000, ge=1, le=10000, description="Largest k a client may ask for.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get 413.")
    max_batch: int = Field(256, ge=1, le=1000, description="Most users in one /v1/recommend/batch call.")
    max_batch_results: int = Field(
        25_600,
        ge=1,
        description="Most users x k in one /v1/recommend/batch call (a larger one is a 413): one "
        "heavy batch must not stall a worker's other requests.",
    )
    cache_enabled: bool = Field(True, description="False turns answer caching off entirely.")
    cache_size: int = Field(100_000, ge=1, description="Entries in the in-process cache.")
    cache_ttl_s: float = Field(300.0, gt=0, description="Seconds a cached answer lives.")
    redis_url: str | None = Field(None, description="Unset: the in-process cache only.")
    redis_timeout_s: float = Field(0.05, gt=0, description="Redis connect/read timeout.")
    admin_token: SecretStr | None = Field(None, description="Bearer token for /admin; unset: disabled.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins; empty: off.")
    shutdown_drain_s: float = Field(
        0.0, ge=0, le=300, description="On SIGTERM: /readyz 503 and keep serving this long; 0: stop at once."
    )
    hamming_kernel: Literal["auto", "faiss", "numba"] = Field(
        "auto", description="Flat Hamming scan: numba's XOR+popcount kernel when installed, else faiss."
    )
    rerank_dtype: Literal["float32", "float16", "int8"] = Field(
        "float32",
        description="float16 halves rerank memory, int8 quarters it (converted at load unless the "
        "artifact has them: hashrec index --rerank-float16 / --rerank-int8); the walk layout has no "
        "vectors and ignores it.",
    )
    scan_prefetch_bytes: int | None = Field(
        None,
        ge=0,
        le=1 << 20,
        description="How far ahead the numba scan prefetches codes; 0: off; unset: 2048 except on AMD "
        "Zen 4 and later (measured: faster on Intel and AMD Zen 3, slower on AMD Zen 4).",
    )
    faiss_threads: int = Field(1, ge=1, description="OpenMP threads per worker for faiss.")
    request_read_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="A connection that sends no whole request this long is closed."
    )
    keep_alive_s: int = Field(5, ge=1, le=3600, description="Idle keep-alive connections close after this.")
    limit_concurrency: int = Field(
        2048, ge=1, description="Connections plus tasks per worker past which new requests get 503."
    )
    direct_routes: bool = Field(
        True, description="POST /v1/recommend without FastAPI's routing layers (same answers); false: routed."
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry (to the providers configured in the process); off: "
        "FastAPI skips its per-request check for a configured provider.",
    )
    docs: Literal["off", "schema", "ui"] = Field(
        "schema",
        description="schema: /openapi.json only; ui: also /docs and /redoc (they load Swagger UI and "
        "ReDoc from a CDN); off: neither. The admin routes are in it only with an admin token.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Level of the JSON logs; `hashrec serve --log-level` sets it."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        """A URL redis-py can connect to, refused at start rather than in every worker."""
        from urllib.parse import urlsplit

        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in REDIS_SCHEMES or not (parts.netloc or parts.path):
            raise ValueError(f"not a Redis URL: use {' or '.join(s + '://...' for s in REDIS_SCHEMES)}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
