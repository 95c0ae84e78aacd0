"""A local S3-compatible server (moto's server mode) for the S3 backend's tests."""

from __future__ import annotations

import logging

import pytest

BUCKET = "hashrec-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def endpoint():
    """URL of a moto S3 server on 127.0.0.1 with the bucket ``BUCKET``; skips where moto or s3fs
    is not installed."""
    pytest.importorskip("s3fs", reason="s3fs is not installed: the S3 backend cannot be tested")
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed: no local S3-compatible server to test against"
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    import s3fs

    s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=url, skip_instance_cache=True).mkdir(
        BUCKET
    )
    yield url
    server.stop()
