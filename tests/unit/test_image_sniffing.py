"""Uploaded images are recognised by their bytes: real images pass, anything else does not."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from skillswap.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from skillswap.skills.images import check_image, sniff_image


def image_bytes(fmt: str, size: tuple[int, int] = (37, 21), **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options", "content_type"),
    [
        ("PNG", {}, "image/png"),
        ("JPEG", {}, "image/jpeg"),
        ("JPEG", {"progressive": True}, "image/jpeg"),
        ("GIF", {}, "image/gif"),
        ("WEBP", {}, "image/webp"),
        ("WEBP", {"lossless": True}, "image/webp"),
    ],
)
def test_real_images_are_recognised_with_their_dimensions(fmt, options, content_type) -> None:
    found = sniff_image(image_bytes(fmt, **options))
    assert found is not None
    assert (found.content_type, found.width, found.height) == (content_type, 37, 21)


def test_text_named_like_an_image_is_not_an_image() -> None:
    assert sniff_image(b"hello, I am definitely a PNG\n") is None
    with pytest.raises(UnsupportedMediaType) as caught:
        check_image(b"<svg onload=alert(1)>", max_bytes=1000)
    assert caught.value.code == "unsupported_image"


def test_truncated_or_tampered_png_is_refused() -> None:
    png = image_bytes("PNG")
    assert sniff_image(png[:-12]) is None  # no IEND: truncated
    tampered = bytearray(png)
    tampered[17] ^= 0xFF  # width changed without fixing the header CRC
    assert sniff_image(bytes(tampered)) is None


def test_png_signature_followed_by_html_is_refused() -> None:
    assert sniff_image(b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>") is None


def test_size_limit_is_checked_before_anything_else() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        check_image(image_bytes("PNG"), max_bytes=50)
    assert caught.value.code == "image_too_large"


def test_empty_file_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        check_image(b"", max_bytes=50)


def test_huge_dimensions_are_refused_even_when_the_file_is_small() -> None:
    bomb = image_bytes("PNG", size=(9000, 10))
    with pytest.raises(ValidationFailed) as caught:
        check_image(bomb, max_bytes=10_000_000)
    assert caught.value.code == "image_dimensions"
