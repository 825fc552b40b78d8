"""Uploaded images are stored re-encoded: no EXIF (GPS, camera), XMP, ICC or text chunks, the
orientation applied to the pixels; decompression bombs are refused before anything is decoded."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tests.conftest import media_folder

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b"<rdf:Description><creator>Jane Doe, 12 Secret Street</creator></rdf:Description>"
    b"</rdf:RDF></x:xmpmeta>"
)


@pytest.fixture
def media_dir(deps, tmp_path: Path) -> Iterator[Path]:
    """Uploaded files go to a temporary folder for the test."""
    with media_folder(deps, tmp_path):
        yield tmp_path


def photo_with_metadata() -> bytes:
    """A 40x20 JPEG, left half red and right half blue, as a phone would store it rotated:
    EXIF orientation 6 (turn 90 degrees clockwise to view), camera, GPS; XMP; an ICC profile;
    a comment."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS 5D Mark IV"  # Model
    exif[0xA431] = "0123456789"  # BodySerialNumber
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPS
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif, xmp=XMP, icc_profile=icc, comment=b"hi")
    return buffer.getvalue()


async def upload(api, owner, skill, data: bytes, name: str = "upload.bin"):
    return await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        files={"image": (name, data, "application/octet-stream")},
    )


def stored(media_dir: Path, image: dict) -> bytes:
    """The bytes the storage holds for `image` (its URL is /media/<key>)."""
    key = image["url"].split("/media/", 1)[1]
    return (media_dir / key).read_bytes()


async def test_a_photo_loses_its_exif_gps_xmp_and_profile_and_stands_upright(
    api, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    original = photo_with_metadata()
    with Image.open(io.BytesIO(original)) as sent:  # what the test sends does carry it all
        assert sent.getexif()[0x0112] == 6 and sent.getexif().get_ifd(0x8825)
        assert {"xmp", "icc_profile", "comment"} <= set(sent.info)

    response = await upload(api, owner, skill, original, "IMG_0001.JPG")
    assert response.status_code == 201, response.text
    image = response.json()
    # Turned upright: 20 wide and 40 high, as reported and as stored.
    assert (image["content_type"], image["width"], image["height"]) == ("image/jpeg", 20, 40)
    data = stored(media_dir, image)
    assert b"Canon" not in data and b"Secret Street" not in data and b"0123456789" not in data
    with Image.open(io.BytesIO(data)) as kept:
        assert kept.format == "JPEG" and kept.size == (20, 40)
        assert dict(kept.getexif()) == {}
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(kept.info)
        rgb = kept.convert("RGB")
        # The left half (red) is now the top, the right half (blue) the bottom.
        red, blue = rgb.getpixel((10, 5)), rgb.getpixel((10, 35))
        assert red[0] > 200 and red[2] < 60, red
        assert blue[2] > 200 and blue[0] < 60, blue
    served = await api.get(image["url"])
    assert served.status_code == 200 and served.content == data
    listed = (await api.get(f"/api/skills/{skill['id']}/")).json()["images"]
    assert [(i["width"], i["height"]) for i in listed] == [(20, 40)]


async def test_a_png_loses_its_text_chunks_and_keeps_its_pixels(
    api, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    picture = Image.new("RGBA", (9, 7), (10, 20, 30, 128))
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jane Doe")
    text.add_text("Comment", "home address: 12 Secret Street")
    text.add_itxt("Description", "compressed secret", zip=True)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", pnginfo=text)
    original = buffer.getvalue()
    assert b"tEXt" in original and b"iTXt" in original

    response = await upload(api, owner, skill, original)
    assert response.status_code == 201, response.text
    data = stored(media_dir, response.json())
    assert b"tEXt" not in data and b"iTXt" not in data and b"zTXt" not in data
    assert b"Jane Doe" not in data
    with Image.open(io.BytesIO(data)) as kept:
        assert kept.format == "PNG" and kept.text == {} and kept.info == {}
        assert kept.mode == "RGBA" and kept.getpixel((4, 3)) == (10, 20, 30, 128)


@pytest.mark.parametrize(("fmt", "content_type"), [("WEBP", "image/webp"), ("GIF", "image/gif")])
async def test_webp_and_gif_keep_their_format_without_their_metadata(
    api, make_user, make_skill, media_dir, fmt, content_type
):
    owner = await make_user()
    skill = await make_skill(owner)
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    buffer = io.BytesIO()
    options = {"exif": exif, "xmp": XMP} if fmt == "WEBP" else {"comment": b"Secret Street"}
    Image.new("RGB", (12, 8), (0, 200, 0)).save(buffer, fmt, **options)
    original = buffer.getvalue()
    assert b"Canon" in original or b"Secret Street" in original

    response = await upload(api, owner, skill, original)
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == content_type
    data = stored(media_dir, response.json())
    assert b"Canon" not in data and b"Secret Street" not in data
    with Image.open(io.BytesIO(data)) as kept:
        assert kept.format == fmt and kept.size == (12, 8)
        assert dict(kept.getexif()) == {}
        assert not {"exif", "xmp", "comment"} & set(kept.info)


async def test_an_animated_gif_stays_animated(api, make_user, make_skill, media_dir):
    owner = await make_user()
    skill = await make_skill(owner)
    colours = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    frames = [Image.new("RGB", (10, 10), colour) for colour in colours]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], duration=[70, 80, 90], loop=0
    )
    response = await upload(api, owner, skill, buffer.getvalue())
    assert response.status_code == 201, response.text
    with Image.open(io.BytesIO(stored(media_dir, response.json()))) as kept:
        assert kept.format == "GIF" and kept.n_frames == 3 and kept.info["loop"] == 0
        seen = []
        for index in range(kept.n_frames):
            kept.seek(index)
            seen.append((kept.info["duration"], kept.convert("RGB").getpixel((5, 5))))
        assert seen == list(zip([70, 80, 90], colours, strict=True))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int, idat: bytes) -> bytes:
    """A 1-bit greyscale PNG whose header says `width` x `height`, with `idat` as its data."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


async def test_a_decompression_bomb_is_refused_before_it_is_decoded(
    api, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    # 8000 x 6000 = 48 megapixels (each side within the cap), a few kilobytes on the wire.
    rows = b"".join(b"\x00" + bytes(1000) for _ in range(6000))
    real_bomb = bomb_png(8000, 6000, zlib.compress(rows, 9))
    assert len(real_bomb) < 20_000
    # The same header with data that could not even be decoded: refused for its size all the
    # same (400 image_dimensions, not 415 unsupported_image), so nothing was decoded.
    header_only = bomb_png(8000, 6000, zlib.compress(b"\x00" * 10))
    for bomb in (real_bomb, header_only, bomb_png(60_000, 60_000, b"")):
        response = await upload(api, owner, skill, bomb)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "image_dimensions"
        assert "image" in response.json()["errors"]
    assert not list(media_dir.rglob("*.*"))
    assert (await api.get(f"/api/skills/{skill['id']}/")).json()["images"] == []


async def test_an_animation_with_too_many_pixels_in_all_is_refused(
    api, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    # Each 3000 x 3000 frame is within the cap; five of them (45 megapixels) are not.
    frames = [Image.new("P", (3000, 3000), color) for color in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    response = await upload(api, owner, skill, buffer.getvalue())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "image_dimensions"
    assert "frames" in response.json()["errors"]["image"][0]
    assert not list(media_dir.rglob("*.*"))


async def test_an_image_that_sniffs_right_but_does_not_decode_is_refused(
    api, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    # A valid PNG header and end, with deflate data that is not deflate data.
    broken = bomb_png(16, 16, b"this is not zlib data at all")
    response = await upload(api, owner, skill, broken)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_image"
    assert not list(media_dir.rglob("*.*"))
