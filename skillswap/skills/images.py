"""Skill images: recognised by their bytes (never by name or declared type), re-encoded
without their metadata, stored, listed.

Every upload is decoded and encoded again by Pillow, in its own format, before it is stored:
what is served is pixels written by Pillow, never the bytes someone sent. That drops whatever
rides along in the file (EXIF with its GPS position and camera serial, XMP, ICC profiles, PNG
text chunks, GIF comments, trailing data) and makes a file crafted for some other decoder
harmless. The EXIF orientation is applied to the pixels first, so photos stay upright, and an
embedded colour profile is converted to sRGB before it is dropped. The pixel caps are checked
on the header before anything is decoded, and again on Pillow's own reading of it.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import ExifTags, Image, ImageCms, ImageSequence
from sqlalchemy import func, select

from skillswap.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from skillswap.i18n import lazy
from skillswap.models import SkillImage, User
from skillswap.skills.listings import load_skill_for_owner

if TYPE_CHECKING:
    from skillswap.deps import Deps

MAX_IMAGES_PER_SKILL = 8
MAX_SIDE_PIXELS = 8192
MAX_PIXELS = 40_000_000  # a decompression bomb is small on the wire and huge in memory

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# JPEG start-of-frame markers carry the dimensions; C4, C8 and CC share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class ImageFormat:
    """What the bytes of an upload turned out to be."""

    content_type: str
    extension: str
    width: int
    height: int


def _png(data: bytes) -> ImageFormat | None:
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 45 or data[12:16] != b"IHDR":
        return None
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(data[12:29]) != crc or not data.endswith(_PNG_END):
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageFormat("image/png", "png", width, height)


def _jpeg(data: bytes) -> ImageFormat | None:
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers have no length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return ImageFormat("image/jpeg", "jpg", width, height)
        if marker == 0xDA:  # image data started without a frame header
            return None
        position += 2 + length
    return None


def _gif(data: bytes) -> ImageFormat | None:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 14 or not data.endswith(b";"):
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return ImageFormat("image/gif", "gif", width, height)


def _webp(data: bytes) -> ImageFormat | None:
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 != len(data) + (len(data) % 2):  # RIFF pads odd sizes
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageFormat("image/webp", "webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ImageFormat("image/webp", "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageFormat("image/webp", "webp", width, height)
    return None


def sniff_image(data: bytes) -> ImageFormat | None:
    """The format and size of a PNG, JPEG, GIF or WebP image, or None for anything else."""
    for reader in (_png, _jpeg, _gif, _webp):
        found = reader(data)
        if found is not None:
            return found
    return None


def check_image(data: bytes, *, max_bytes: int) -> ImageFormat:
    """The image's format, or the reason it is refused (size, type, dimensions)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            lazy("Images may be at most {mib} MiB.", mib=round(max_bytes / 1_048_576, 1)),
            code="image_too_large",
        )
    if not data:
        raise ValidationFailed(errors={"image": [lazy("The file is empty.")]})
    found = sniff_image(data)
    if found is None:
        raise UnsupportedMediaType(
            lazy("Upload a PNG, JPEG, WebP or GIF image."), code="unsupported_image"
        )
    check_dimensions(found.width, found.height)
    return found


def check_dimensions(width: int, height: int) -> None:
    """Refuse an image too large to decode, from the size its header declares."""
    if not (1 <= width <= MAX_SIDE_PIXELS and 1 <= height <= MAX_SIDE_PIXELS) or (
        width * height > MAX_PIXELS
    ):
        raise _too_large()


def _too_large() -> ValidationFailed:
    return ValidationFailed(
        errors={
            "image": [
                lazy(
                    "Images may be at most {side} pixels on a side and {mp} megapixels.",
                    side=MAX_SIDE_PIXELS,
                    mp=MAX_PIXELS // 1_000_000,
                )
            ]
        },
        code="image_dimensions",
    )


# -- re-encoding ----------------------------------------------------------------------------

_PILLOW_FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}
# What rendering needs of a frame's `info`; everything else there is metadata and is dropped.
_KEPT_INFO = frozenset({"transparency", "duration", "loop", "background"})
# EXIF orientation -> the transposition that makes the pixels upright (1: already upright).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class CleanImage:
    """An upload as it is stored: re-encoded, metadata-free, upright."""

    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def _unreadable() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        lazy("Upload a PNG, JPEG, WebP or GIF image."), code="unsupported_image"
    )


def _too_many_pixels_in_frames() -> ValidationFailed:
    return ValidationFailed(
        errors={
            "image": [
                lazy(
                    "An animated image may have at most {mp} megapixels in all its frames.",
                    mp=MAX_PIXELS // 1_000_000,
                )
            ]
        },
        code="image_dimensions",
    )


def reencode_image(data: bytes, found: ImageFormat) -> CleanImage:
    """Decode `data` (already sniffed as `found`) and encode it again without metadata.

    Blocking and CPU-bound: call it off the event loop (`asyncio.to_thread`).
    """
    pillow_format = _PILLOW_FORMATS[found.extension]
    try:
        # Only the decoder of the sniffed format may read the bytes.
        with Image.open(io.BytesIO(data), formats=[pillow_format]) as source:
            check_dimensions(*source.size)  # Pillow's reading of the header, before decoding
            upright = _UPRIGHT.get(int(source.getexif().get(ExifTags.Base.Orientation, 1) or 1))
            options = _save_options(source, pillow_format, data)
            frames = list(_clean_frames(source, upright))
        first = frames[0]
        if len(frames) > 1:
            options.update(
                save_all=True,
                append_images=frames[1:],
                duration=[frame.info.get("duration", 100) for frame in frames],
            )
        output = io.BytesIO()
        first.save(output, pillow_format, **options)
    except (ValidationFailed, UnsupportedMediaType):
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own cap, above ours: unreachable
        raise _too_large() from exc
    except Exception as exc:  # a file that sniffs right but does not decode (truncated...)
        raise _unreadable() from exc
    return CleanImage(
        output.getvalue(), found.content_type, found.extension, first.width, first.height
    )


def _clean_frames(source: Image.Image, upright: Image.Transpose | None) -> Iterator[Image.Image]:
    """Every frame decoded, upright, in sRGB, with only the `info` rendering needs."""
    decoded = 0
    for frame in ImageSequence.Iterator(source):
        decoded += frame.width * frame.height
        if decoded > MAX_PIXELS:
            raise _too_many_pixels_in_frames()
        frame.load()
        icc = frame.info.get("icc_profile")
        clean = _to_srgb(frame, icc) if icc else frame.copy()
        if upright is not None:
            clean = clean.transpose(upright)
        clean.info = {key: value for key, value in frame.info.items() if key in _KEPT_INFO}
        yield clean


def _to_srgb(frame: Image.Image, icc: bytes) -> Image.Image:
    """`frame` converted from its embedded profile to sRGB (unchanged if that cannot be done:
    an odd or broken profile is dropped rather than refused)."""
    if frame.mode not in ("RGB", "RGBA", "CMYK"):
        return frame.copy()
    try:
        converted = ImageCms.profileToProfile(
            frame,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if frame.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return frame.copy()
    return converted if converted is not None else frame.copy()


def _save_options(source: Image.Image, pillow_format: str, data: bytes) -> dict[str, Any]:
    """Encoder options that keep the upload's look: its JPEG quantisation, lossless WebP, the
    animation's looping."""
    options: dict[str, Any] = {}
    if pillow_format == "JPEG":
        qtables = getattr(source, "quantization", None)
        options.update({"qtables": qtables} if qtables else {"quality": 90})
    elif pillow_format == "WEBP":
        # Lossless WebP is a VP8L chunk (after the VP8X header and any ICC/animation chunks).
        lossless = data[12:16] == b"VP8L" or b"VP8L" in data[30:4096]
        options.update({"lossless": True} if lossless else {"quality": 90})
    if "loop" in source.info:
        options["loop"] = source.info["loop"]
    return options


def image_view(image: SkillImage | Any, url: str) -> dict[str, Any]:
    """The public description of one image."""
    return {
        "id": image.id,
        "url": url,
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
    }


async def add_image(deps: Deps, *, actor: User, skill_id: int, data: bytes) -> dict[str, Any]:
    """Store an image for the actor's own skill, re-encoded without its metadata; the file is
    written before the row commits."""
    found = check_image(data, max_bytes=deps.settings.max_upload_bytes)
    clean = await asyncio.to_thread(reencode_image, data, found)
    storage = deps.storage
    key = f"skills/{skill_id}/{secrets.token_hex(12)}.{clean.extension}"
    async with deps.db.uow() as uow:
        await load_skill_for_owner(uow, actor=actor, skill_id=skill_id, lock=True)
        count = await uow.session.scalar(
            select(func.count()).select_from(SkillImage).where(SkillImage.skill_id == skill_id)
        )
        if (count or 0) >= MAX_IMAGES_PER_SKILL:
            raise Conflict(
                lazy("A skill can have at most {n} images.", n=MAX_IMAGES_PER_SKILL),
                code="too_many_images",
            )
        position = await uow.session.scalar(
            select(func.coalesce(func.max(SkillImage.position), -1) + 1).where(
                SkillImage.skill_id == skill_id
            )
        )
        image = SkillImage(
            skill_id=skill_id,
            storage_key=key,
            content_type=clean.content_type,
            width=clean.width,
            height=clean.height,
            size_bytes=len(clean.data),
            position=int(position or 0),
            created_at=deps.clock(),
        )
        uow.session.add(image)
        await storage.save(key, clean.data, content_type=clean.content_type)
        try:
            await uow.session.flush()
            await uow.commit()
        except BaseException:
            # The row never committed: the file must not outlive it.
            await storage.delete(key)
            raise
    return image_view(image, storage.url(key))


async def remove_image(deps: Deps, *, actor: User, skill_id: int, image_id: int) -> None:
    """Delete one image of the actor's own skill (the file goes once the row is gone)."""
    storage = deps.storage
    async with deps.db.uow() as uow:
        await load_skill_for_owner(uow, actor=actor, skill_id=skill_id, lock=True)
        image = await uow.session.get(SkillImage, image_id)
        if image is None or image.skill_id != skill_id:
            raise NotFound(lazy("This image does not exist."), code="image_not_found")
        key = image.storage_key
        await uow.session.delete(image)

        async def delete_file() -> None:
            await storage.delete(key)

        uow.after_commit(delete_file)
        await uow.commit()
