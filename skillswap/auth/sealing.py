"""Sealing a secret that must wait in the database for a worker (an emailed code in the outbox).

Only a code's hash is kept with the account; the code itself has to reach the worker that mails
it, through the outbox row. Sealed with AES-GCM under a key derived from SECRET_KEY and bound to
the row's key, a code read from the table (a backup, a replica, an operator's query) is useless,
and it cannot be moved to another row. A code sealed under a SECRET_KEY since rotated away no
longer opens: its mail fails for good and the user asks for a new code.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class SealBroken(Exception):
    """The sealed text was altered, bound to another key, or sealed under another secret."""


class Sealer:
    def __init__(self, secret_key: str) -> None:
        key = hashlib.sha256(b"skillswap/sealed-secret\x00" + secret_key.encode()).digest()
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str, *, bound_to: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, bound_to.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealBroken("the sealed secret does not open with this key") from exc
