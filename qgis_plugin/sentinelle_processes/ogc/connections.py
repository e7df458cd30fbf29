"""Server connections: a name, a URL and how to authenticate, as plain data.

Secrets are never stored here: ``authcfg`` names a configuration of the QGIS authentication
manager (an API key kept in a *Basic* configuration's password, or an OAuth2/OIDC
configuration that QGIS applies itself).  ``auth`` says which: ``none``, ``api-key``
(``X-API-Key: <password of authcfg>``, header name in ``api_key_header``) or ``authcfg``
(QGIS adds the credentials to every request)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

AUTH_MODES = ("none", "api-key", "authcfg")


@dataclass
class Connection:
    name: str
    url: str
    auth: str = "none"
    authcfg: str = ""
    api_key_header: str = "X-API-Key"

    def __post_init__(self):
        self.url = self.url.strip().rstrip("/")
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth: {self.auth!r} n'est pas l'un de / is not one of "
                             f"{', '.join(AUTH_MODES)}")
        if not re.match(r"^https?://", self.url):
            raise ValueError(f"URL: {self.url!r} doit commencer par http:// ou https:// / "
                             "must start with http:// or https://")

    @property
    def slug(self) -> str:
        """Lower-case letters, digits and ``_``: the algorithms' group id."""
        plain = unicodedata.normalize("NFKD", self.name.lower()).encode("ascii", "ignore")
        return re.sub(r"[^a-z0-9]+", "_", plain.decode()).strip("_") or "server"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Connection":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)
