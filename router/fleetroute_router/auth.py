"""Bearer tokens for control calls (feedback), read from a file that may be rotated."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from fleetroute_router import errors

SCHEME = "bearer "


class TokenFile:
    """The token in a file (e.g. a mounted Secret), re-read whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = b""
        self._load()

    def _load(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError as error:
            raise errors.Unauthenticated(f"token file {self.path}: {error.strerror}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            token = self.path.read_bytes().strip()
            if not token:
                raise errors.Unauthenticated(f"token file {self.path} is empty")
            self._token, self._stamp = token, stamp

    def check(self, authorization: str | None) -> None:
        """Unauthenticated unless `authorization` is `Bearer <the token>`."""
        if not authorization or not authorization.lower().startswith(SCHEME):
            raise errors.Unauthenticated("this call needs an Authorization: Bearer token")
        self._load()
        if not hmac.compare_digest(authorization[len(SCHEME) :].strip().encode(), self._token):
            raise errors.Unauthenticated("the bearer token is not the one this router accepts")
