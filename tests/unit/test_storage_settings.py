"""Object storage settings are refused at start when they could not work, and presigned URLs
are signed exactly as AWS documents it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skillswap.settings import ConfigError, Settings
from skillswap.skills.cache import ENTRY_TTL_SECONDS
from skillswap.storage import SigV4Presigner

S3 = {
    "STORAGE_BACKEND": "s3",
    "S3_BUCKET": "images",
    "S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "S3_SECRET_ACCESS_KEY": "s3-secret-never-logged",
}


def test_the_local_disk_is_the_default() -> None:
    settings = Settings.from_env({})
    assert settings.storage_backend == "local"
    settings.validate_for_serving()


def test_s3_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            **S3,
            "S3_ENDPOINT_URL": "http://minio:9000",
            "S3_REGION": "eu-central-1",
            "S3_PUBLIC_BASE_URL": "https://cdn.example.com/",
            "S3_PRESIGN_SECONDS": "900",
        }
    )
    assert (settings.storage_backend, settings.s3_bucket) == ("s3", "images")
    assert (settings.s3_endpoint_url, settings.s3_region) == ("http://minio:9000", "eu-central-1")
    assert settings.s3_public_base_url == "https://cdn.example.com/"
    assert settings.s3_presign_seconds == 900
    assert "s3-secret-never-logged" not in repr(settings)
    settings.validate_for_serving()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"STORAGE_BACKEND": "gcs"}, "STORAGE_BACKEND must be one of: local, s3"),
        ({**S3, "S3_BUCKET": ""}, "STORAGE_BACKEND=s3 needs S3_BUCKET"),
        ({**S3, "S3_SECRET_ACCESS_KEY": ""}, "go together"),
        (
            {"STORAGE_BACKEND": "s3", "S3_BUCKET": "images"},
            "presigned URLs, which need S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY",
        ),
        ({**S3, "S3_PRESIGN_SECONDS": "60"}, "S3_PRESIGN_SECONDS must be between 300 and 302400"),
        ({**S3, "S3_PRESIGN_SECONDS": "604800"}, "S3_PRESIGN_SECONDS must be between"),
    ],
)
def test_storage_that_could_not_work_is_refused_at_start(environ, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ).validate_for_serving()


def test_a_public_base_url_needs_no_keys_and_no_presign_lifetime() -> None:
    Settings.from_env(
        {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": "images",
            "S3_PUBLIC_BASE_URL": "https://cdn.example.com/",
            "S3_PRESIGN_SECONDS": "1",
        }
    ).validate_for_serving()


def test_cached_listings_never_outlive_the_shortest_presigned_url() -> None:
    # A listing answered from the cache carries URLs signed up to ENTRY_TTL_SECONDS earlier;
    # each was valid for at least S3_PRESIGN_SECONDS when signed.
    from skillswap.settings import S3_PRESIGN_MIN_SECONDS

    assert ENTRY_TTL_SECONDS * 4 <= S3_PRESIGN_MIN_SECONDS


def test_presigned_url_matches_the_example_aws_publishes() -> None:
    # "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)", S3 API docs.
    signer = SigV4Presigner(
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1"
    )
    url = signer.presign_get(
        "https://examplebucket.s3.amazonaws.com/test.txt",
        signed_at=datetime(2013, 5, 24, tzinfo=UTC),
        expires_seconds=86400,
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_presigned_url_signs_the_port_of_a_local_endpoint() -> None:
    # The Host header of a non-default port includes it, and so must the signed host.
    signer = SigV4Presigner("AK", "SECRET", "eu-west-3")
    at = datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    with_port = signer.presign_get(
        "http://127.0.0.1:9000/b/k.png", signed_at=at, expires_seconds=60
    )
    without = signer.presign_get("http://127.0.0.1/b/k.png", signed_at=at, expires_seconds=60)
    assert with_port.split("X-Amz-Signature=")[1] != without.split("X-Amz-Signature=")[1]
    # What botocore's own signer (S3SigV4QueryAuth) gives for the same request and instant.
    assert with_port.endswith(
        "X-Amz-Signature=469ba51c442fe03c289f27cdcaf2f0cb626d08b06ffd7c9bb4f10b85ac8e0961"
    )
