"""The access token of an `Authorization: Bearer` header, read alike by REST and WebSocket."""

from __future__ import annotations


def bearer_token(header: str | None) -> str | None:
    """The token of a well-formed `Bearer <token>` header (any case of the scheme); else None.

    What a missing or other header means is the caller's to say: the REST API refuses a header
    that is present but not a bearer token, the WebSocket handshake falls back to `?token=`.
    """
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
