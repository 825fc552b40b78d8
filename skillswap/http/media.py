"""Uploaded files from the local storage, served at /media/ (with S3, clients fetch them from
the store and every path here is a 404)."""

from __future__ import annotations

import os
from typing import Any

import tornado.web

from skillswap.accounts.exports import EXPORTS_PREFIX
from skillswap.deps import Deps
from skillswap.http.base import ProblemAnswers, decode_argument_text
from skillswap.storage import LocalStorage, media_root

_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


class MediaHandler(ProblemAnswers, tornado.web.StaticFileHandler):
    """Static files under the storage root; keys are unique, so they are cached for long."""

    def initialize(self, **_kwargs: Any) -> None:  # type: ignore[override]
        deps: Deps = self.application.settings["deps"]
        storage = deps.storage
        self.serves_files = isinstance(storage, LocalStorage)
        root = storage.root if isinstance(storage, LocalStorage) else media_root(deps.settings)
        super().initialize(path=str(root))

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        # NUL in a file name is a ValueError deep in os.path, not a missing file.
        return decode_argument_text(value, name)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # Data exports share the storage but are fetched once, through their mailed link only.
        if os.path.relpath(absolute_path, root).startswith(EXPORTS_PREFIX.rstrip("/")):
            raise tornado.web.HTTPError(404)
        # A folder (the root itself included) is not a file anyone uploaded: the same 404 as
        # a missing file, whether or not the folder exists yet on this node.
        if not self.serves_files or os.path.isdir(absolute_path):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def set_default_headers(self) -> None:
        # Here rather than in set_extra_headers so that error answers carry them too.
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")

    def get_content_type(self) -> str:
        extension = (self.absolute_path or "").rsplit(".", 1)[-1].lower()
        return _TYPES.get(extension, "application/octet-stream")


routes = [tornado.web.url(r"/media/(.*)", MediaHandler)]
