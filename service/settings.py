"""Service settings, read from HASHREC_* environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; ``HASHREC_<NAME>`` sets ``<name>``."""

    model_config = SettingsConfigDict(env_prefix="HASHREC_", extra="ignore")

    store: Path = Field(Path("store"), description="Model store directory.")
    version: str | None = Field(None, description="Serve this version instead of the current one.")
    oversample: int = Field(10, ge=1, le=1000, description="Hamming candidates C = k * oversample.")
    max_candidates: int = Field(5000, ge=1, description="Upper bound on C.")
    max_k: int = Field(1000, ge=1, le=10000, description="Largest k a client may ask for.")
    cache_enabled: bool = Field(True, description="False turns answer caching off entirely.")
    cache_size: int = Field(100_000, ge=1, description="Entries in the in-process cache.")
    cache_ttl_s: float = Field(300.0, gt=0, description="Seconds a cached answer lives.")
    redis_url: str | None = Field(None, description="Unset: the in-process cache.")
    faiss_threads: int = Field(1, ge=1, description="OpenMP threads per worker for faiss.")
    log_level: str = Field("info")
