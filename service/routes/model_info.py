"""GET /v1/model: the serving version and its manifest summary."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from hashrec.service.routes.deps import LoadedDep
from hashrec.service.schemas import ErrorResponse, ModelResponse

router = APIRouter(tags=["model"])

#: dataset fields shown: counts, split and fingerprint (its source and options may be paths)
_DATASET_FIELDS = ("split", "fingerprint", "users", "items", "train_interactions", "test_interactions")


def public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest summary an unauthenticated client may see: format, creation, bits, metrics,
    the recorded index options (without the encoder's training history) and dataset counts."""
    config = manifest.get("config") or {}
    dataset = manifest.get("dataset") or {}
    return {
        **{
            key: manifest[key]
            for key in ("format_version", "version", "created_at", "bits")
            if key in manifest
        },
        "metrics": manifest.get("metrics") or {},
        "config": {key: value for key, value in config.items() if key != "encoder_config"},
        "dataset": {key: dataset[key] for key in _DATASET_FIELDS if key in dataset},
    }


@router.head("/v1/model", include_in_schema=False, response_model=None)
@router.get("/v1/model", response_model=ModelResponse, responses={503: {"model": ErrorResponse}})
async def model_info(loaded: LoadedDep) -> ModelResponse:
    """The serving version, what its manifest says of the model (no files, paths or library
    versions: this route needs no token) and when it was loaded."""
    model = loaded.model
    return ModelResponse(
        model_version=model.version,
        loaded_at=model.loaded_at,
        users=model.n_users,
        items=model.n_items,
        bits=model.bits,
        manifest=public_manifest(model.manifest),
    )
