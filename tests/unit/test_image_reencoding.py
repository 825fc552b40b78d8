"""Re-encoding keeps what an image looks like: its format, mode, transparency and colours."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from skillswap.errors import UnsupportedMediaType, ValidationFailed
from skillswap.skills.images import check_image, reencode_image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def reencoded(data: bytes) -> Image.Image:
    clean = reencode_image(data, check_image(data, max_bytes=10_000_000))
    return Image.open(io.BytesIO(clean.data))


def half_transparent() -> Image.Image:
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    image.paste((0, 255, 0, 255), (0, 0, 8, 16))
    return image


@pytest.mark.parametrize(
    ("image", "fmt"),
    [
        (half_transparent(), "PNG"),
        (half_transparent().quantize(4), "PNG"),
        (half_transparent(), "WEBP"),
        (half_transparent().convert("P"), "GIF"),
    ],
)
def test_transparency_is_kept(image, fmt) -> None:
    sent = encoded(image, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    kept = reencoded(sent)
    assert kept.format == fmt and kept.mode == image.mode
    original = Image.open(io.BytesIO(sent)).convert("RGBA")
    rgba = kept.convert("RGBA")
    assert rgba.getpixel((2, 3)) == original.getpixel((2, 3))
    assert rgba.getpixel((12, 3))[3] == original.getpixel((12, 3))[3]


def test_a_cmyk_jpeg_keeps_its_colours() -> None:
    kept = reencoded(encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    assert kept.mode == "CMYK"
    red = kept.convert("RGB").getpixel((8, 8))
    assert red[0] > 240 and red[1] < 15 and red[2] < 15, red


def test_a_lossless_webp_stays_lossless() -> None:
    noise = Image.effect_noise((32, 32), 64).convert("RGB")
    kept = reencoded(encoded(noise, "WEBP", lossless=True))
    assert kept.convert("RGB").tobytes() == noise.tobytes()


def test_a_jpeg_is_written_with_its_own_quantisation() -> None:
    photo = Image.effect_noise((64, 64), 40).convert("RGB")
    original = encoded(photo, "JPEG", quality=50)
    kept = reencoded(original)
    assert kept.quantization == Image.open(io.BytesIO(original)).quantization


def test_trailing_bytes_after_the_image_are_not_kept() -> None:
    data = encoded(Image.new("RGB", (8, 8), (1, 2, 3)), "JPEG") + b"<?php system($_GET[1]);"
    clean = reencode_image(data, check_image(data, max_bytes=10_000_000))
    assert b"php" not in clean.data


def test_a_gif_whose_frames_cannot_be_decoded_is_refused() -> None:
    data = encoded(Image.new("P", (8, 8), 1), "GIF")
    broken = data[:-4] + b"\x00\x00;"  # image data cut short, trailer kept
    with pytest.raises((UnsupportedMediaType, ValidationFailed)):
        reencode_image(broken, check_image(broken, max_bytes=10_000))
