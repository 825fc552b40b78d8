"""gzip for the clients that ask for it: the output transform of the application.

Tornado's own `GZipContentEncoding` (`compress_response=True`) is the base; on top of it:

- Accept-Encoding is read with its q-values: `gzip;q=0` (or `identity` alone) gets a plain
  answer, `*` takes gzip; Tornado's looks for the substring "gzip".
- A partial answer (206) stays plain: its Content-Range counts bytes of the plain file.
  Interim answers (the WebSocket handshake's 101) are left as they are.
- A strong ETag (the static files' version) becomes weak on an answer that may be gzipped:
  the plain and the gzipped bytes may not share a strong tag (RFC 9110 8.8.3). The API's
  JSON tags are weak already (`BaseHandler.compute_etag`), so they are the same either way.
- problem+json is compressed like JSON.

Answers under `MIN_LENGTH` (1,024 bytes) written at once stay plain; every answer says
`Vary: Accept-Encoding`. What is not text or JSON (images, ZIP exports) is never compressed.
Answers written before any handler runs (the request guard's refusals) do not pass here.
"""

from __future__ import annotations

import tornado.httputil
import tornado.web

GZIP_CODINGS = frozenset({"gzip", "x-gzip"})


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an Accept-Encoding value lets the answer be gzipped (RFC 9110 12.5.3)."""
    named: float | None = None
    anything: float | None = None
    for item in accept_encoding.split(","):
        coding, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # an unreadable weight takes nothing
        coding = coding.lower()
        if coding in GZIP_CODINGS:
            named = max(named or 0.0, quality)
        elif coding == "*":
            anything = quality
    if named is not None:
        return named > 0
    return anything is not None and anything > 0


class GzipWhenAsked(tornado.web.GZipContentEncoding):
    """Tornado's gzip transform with the rules above."""

    CONTENT_TYPES = tornado.web.GZipContentEncoding.CONTENT_TYPES | {"application/problem+json"}

    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self._asked = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        self._gzipping = self._asked

    def transform_first_chunk(
        self,
        status_code: int,
        headers: tornado.httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        if status_code < 200:
            self._gzipping = False
            return status_code, headers, chunk
        if status_code == 206:
            self._gzipping = False
        status_code, headers, chunk = super().transform_first_chunk(
            status_code, headers, chunk, finishing
        )
        etag = headers.get("Etag")
        # A 304 carries the tag of the answer the client would get: gzipped, when it asks.
        may_be_gzipped = self._gzipping or (status_code == 304 and self._asked)
        if etag and not etag.startswith("W/") and may_be_gzipped:
            headers["Etag"] = "W/" + etag
        return status_code, headers, chunk
