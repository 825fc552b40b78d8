"""A real S3 server for tests: moto's server mode on a free port of this machine, in a thread.

The storage talks to it over HTTP exactly as it would to AWS or MinIO (moto does not check
signatures, so presigned URLs are checked against AWS's published example in the unit tests).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from skillswap.settings import Settings

ACCESS_KEY_ID = "AKIATESTSKILLSWAP000"
SECRET_ACCESS_KEY = "test-secret-access-key-for-the-local-s3-server"
REGION = "eu-west-1"


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 server listens."""

    endpoint_url: str

    def settings(self, base: Settings, bucket: str, **overrides: Any) -> Settings:
        """`base` with STORAGE_BACKEND=s3 on this server and `bucket`."""
        return base.with_overrides(
            storage_backend="s3",
            s3_endpoint_url=self.endpoint_url,
            s3_bucket=bucket,
            s3_access_key_id=ACCESS_KEY_ID,
            s3_secret_access_key=SECRET_ACCESS_KEY,
            s3_region=REGION,
            **overrides,
        )

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        """An S3 client of its own, to look at the bucket from outside the app."""
        import aioboto3

        session = aioboto3.Session(
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
        )
        async with session.client("s3", endpoint_url=self.endpoint_url) as client:
            yield client

    async def new_bucket(self) -> str:
        """A new empty bucket (buckets are made by operators, not by the app)."""
        name = f"skillswap-test-{secrets.token_hex(4)}"
        async with self.client() as client:
            await client.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        return name

    async def make_public(self, bucket: str) -> None:
        """Let anyone read `bucket`'s objects, as a bucket behind S3_PUBLIC_BASE_URL does."""
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        async with self.client() as client:
            await client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    async def keys(self, bucket: str) -> list[str]:
        """Every key in `bucket`."""
        async with self.client() as client:
            listed = await client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    async def read(self, bucket: str, key: str) -> bytes:
        """The stored bytes of `key`."""
        async with self.client() as client:
            answer = await client.get_object(Bucket=bucket, Key=key)
            async with answer["Body"] as body:
                return bytes(await body.read())


@contextlib.contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 and a free port while the block runs."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """The test S3 server of a module (import this fixture into the module)."""
    with moto_s3_server() as server:
        yield server
