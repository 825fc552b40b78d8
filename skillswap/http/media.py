"""Uploaded files from the local storage, served at /media/."""

from __future__ import annotations

from typing import Any

import tornado.web

from skillswap.deps import Deps
from skillswap.http.base import decode_argument_text, error_for, problem_document
from skillswap.i18n import negotiate_locale
from skillswap.jsonutil import dumpb
from skillswap.storage import LocalStorage, get_storage, media_root

_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


class MediaHandler(tornado.web.StaticFileHandler):
    """Static files under the storage root; keys are unique, so they are cached for long."""

    def initialize(self, **_kwargs: Any) -> None:  # type: ignore[override]
        deps: Deps = self.application.settings["deps"]
        storage = get_storage(deps)
        root = storage.root if isinstance(storage, LocalStorage) else media_root(deps.settings)
        super().initialize(path=str(root))

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        # NUL in a file name is a ValueError deep in os.path, not a missing file.
        return decode_argument_text(value, name)

    def set_default_headers(self) -> None:
        # Here rather than in set_extra_headers so that error answers carry them too.
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")

    def get_content_type(self) -> str:
        extension = (self.absolute_path or "").rsplit(".", 1)[-1].lower()
        return _TYPES.get(extension, "application/octet-stream")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A missing or refused file is a problem+json answer like any other API error."""
        exc_info = kwargs.get("exc_info")
        error = error_for(status_code, exc_info[1] if exc_info else None)
        deps: Deps = self.application.settings["deps"]
        translator = deps.catalogs.get(
            negotiate_locale(
                user_locale=None,
                accept_language=self.request.headers.get("Accept-Language"),
                default=deps.settings.default_locale,
            )
        )
        self.set_status(error.status)
        self.set_header("Content-Type", "application/problem+json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        document = problem_document(error, translator, instance=self.request.path, request_id=None)
        self.finish(dumpb(document))


routes = [tornado.web.url(r"/media/(.*)", MediaHandler)]
