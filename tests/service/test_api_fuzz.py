"""schemathesis against the service's own OpenAPI schema: no 5xx, every response matches it.

The app is driven in-process over ASGI; a planted model is loaded once for the module. The
number of generated cases is counted and must reach MIN_CASES.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hashrec.model_store import ModelStore
from hashrec.service.app import create_app
from hashrec.service.settings import Settings
from hypothesis import HealthCheck, settings

from tests.conftest import planted_arrays, publish_arrays

MIN_CASES = 1000
# CI runs 200 per operation; a nightly-style run raises it, e.g. HASHREC_FUZZ_EXAMPLES=5000.
EXAMPLES_PER_OPERATION = int(os.environ.get("HASHREC_FUZZ_EXAMPLES", "200"))

_store_dir = Path(tempfile.mkdtemp(prefix="hashrec-fuzz-"))
# Limits set to the schema's own caps: a stricter deployment setting would (correctly) reject
# schema-valid input, which schemathesis reports as positive data rejected.
app = create_app(
    Settings(
        store=_store_dir,
        poll_interval_s=0,
        admin_token="fuzz-token",
        max_batch=1000,
        max_candidates=10_000,
        max_batch_results=1000 * 10_000,
    )
)
# An oversized body (a schema-violating exclude_items of megabytes) is rightly refused with 413
# before validation; schemathesis's negative-data check does not list 413 by default.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
config = schemathesis.config.SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
_cases = {"n": 0}


@pytest.fixture(scope="module", autouse=True)
def loaded_app():
    publish_arrays(ModelStore(_store_dir), planted_arrays(n_users=200, n_items=300))
    with TestClient(app):  # runs the lifespan: the model is loaded into app.state
        yield
    assert _cases["n"] >= MIN_CASES, f"only {_cases['n']} generated cases"


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_responses_match_schema(case):
    _cases["n"] += 1
    response = case.call()
    assert response.status_code < 500, response.text
    case.validate_response(response)
