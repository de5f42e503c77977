"""A real S3 API on 127.0.0.1 for tests: moto's server, started and stopped around each test.

    from s3_fixtures import s3_bucket  # noqa: F401 (a fixture)

    def test_x(s3_bucket):  # "s3://<bucket>", AWS_ENDPOINT_URL pointing at the server
        ...

s3fs, boto3 and pyarrow all read AWS_ENDPOINT_URL, so code under test needs no setting;
subprocesses inherit it. The dummy credentials keep the real AWS credential chain out.
"""

from __future__ import annotations

import os
import urllib.request

import pytest


@pytest.fixture
def s3_bucket(monkeypatch):
    yield from _moto_bucket(monkeypatch)


@pytest.fixture(scope="module")
def s3_bucket_module():
    """The same server for a whole test module (tests that start a Ray cluster after it: its
    workers take the endpoint from the environment when they start); use a prefix per test."""
    with pytest.MonkeyPatch.context() as mp:
        yield from _moto_bucket(mp)


def _moto_bucket(monkeypatch):
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached instance would keep an earlier server's endpoint
    s3fs.S3FileSystem().mkdir("unilseg-test")
    try:
        yield "s3://unilseg-test"
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        # moto keeps its buckets in the process, not in the server: empty them for the next test
        urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"))
        server.stop()


@pytest.fixture
def s3_options(s3_bucket, monkeypatch):
    """("s3://<bucket>", storage_options) where only the options reach the server: the
    environment's endpoint and credentials are removed (a call that drops the options fails
    with no credentials), and the secret key is a recognizable string tests grep for.

    Ray processes started while it is active inherit this environment: start Ray inside the test.
    """
    import secrets

    import s3fs

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookups either
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    s3fs.S3FileSystem.clear_instance_cache()
    secret = f"unilseg-test-secret-{secrets.token_hex(8)}"
    yield s3_bucket, {"endpoint_url": endpoint, "key": "testing", "secret": secret}
    s3fs.S3FileSystem.clear_instance_cache()
