"""Which URLs the server may call back (OGC API Processes ``subscriber``), so that a client
cannot use it to reach addresses inside the authority's network (SSRF).

An execution's ``subscriber`` (``successUri``, ``inProgressUri``, ``failedUri``) makes the
server POST to URLs the client chose.  A URL is accepted when

* its scheme is allowed (``SENTINELLE_CALLBACK_SCHEMES``, default ``https,http``), it has a
  host and no credentials are hidden in odd places;
* its host matches the allow-list when there is one (``SENTINELLE_CALLBACK_HOSTS``: comma-
  separated host names or ``*.example.fr`` patterns; empty: any host);
* **every** address the host resolves to is public — loopback, private, link-local (cloud
  metadata at 169.254.169.254), shared, multicast, reserved and unspecified addresses are
  refused unless they fall in ``SENTINELLE_CALLBACK_NETWORKS`` (comma-separated CIDR, e.g.
  ``10.20.0.0/16`` for an internal webhook receiver; empty by default).

The check runs when the job is submitted (a clear 400) and again just before each call
(a name may resolve elsewhere by then); calls do not follow redirects.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from sentinelle.errors import InvalidInput

#: the ``subscriber`` members that hold URLs
SUBSCRIBER_URIS = ("successUri", "inProgressUri", "failedUri")
#: seconds allowed to resolve a callback host
RESOLVE_TIMEOUT = 5.0
MAX_URL_LENGTH = 2048

_RESOLVER = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="sentinelle-resolve")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@dataclass(frozen=True)
class CallbackPolicy:
    schemes: tuple[str, ...] = ("https", "http")
    hosts: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_env(cls) -> CallbackPolicy:
        schemes = tuple(s.lower() for s in _split(os.environ.get("SENTINELLE_CALLBACK_SCHEMES")))
        networks = []
        for text in _split(os.environ.get("SENTINELLE_CALLBACK_NETWORKS")):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as err:
                raise ValueError(f"SENTINELLE_CALLBACK_NETWORKS: {text!r} is not a network "
                                 "(CIDR such as 10.20.0.0/16)") from err
        return cls(schemes=schemes or cls.schemes,
                   hosts=tuple(h.lower() for h in _split(os.environ.get(
                       "SENTINELLE_CALLBACK_HOSTS"))),
                   networks=tuple(networks))

    def host_allowed(self, host: str) -> bool:
        return not self.hosts or any(fnmatch.fnmatchcase(host, p) for p in self.hosts)

    def address_allowed(self, address: IPAddress) -> bool:
        if any(address in net for net in self.networks if net.version == address.version):
            return True
        return is_public(address)


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (IPv4-mapped IPv6 judged as its IPv4 address)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not (address.is_multicast or address.is_reserved
                                      or address.is_unspecified or address.is_loopback
                                      or address.is_link_local or address.is_private)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (bounded by :data:`RESOLVE_TIMEOUT`)."""
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT)
    except concurrent.futures.TimeoutError as err:
        raise InvalidInput(f"the host {host} could not be resolved within "
                           f"{RESOLVE_TIMEOUT:.0f} s") from err
    except (OSError, UnicodeError) as err:
        raise InvalidInput(f"the host {host} could not be resolved ({err})") from err
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_url(url: object, policy: CallbackPolicy | None = None) -> str:
    """Return ``url`` if the server may POST to it, else raise ``InvalidInput`` saying why."""
    policy = policy or CallbackPolicy.from_env()
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("must be a URL (a string such as https://hooks.example.fr/done)")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise InvalidInput(f"not a valid URL ({err})") from err
    scheme = parts.scheme.lower()
    if scheme not in policy.schemes:
        raise InvalidInput(f"scheme {scheme or '(none)'!r} not allowed; use "
                           f"{' or '.join(policy.schemes)}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidInput("the URL has no host")
    if not policy.host_allowed(host):
        raise InvalidInput(f"host {host} is not in the callback allow-list "
                           "(SENTINELLE_CALLBACK_HOSTS)")
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [literal]
    except ValueError:
        addresses = resolve(host, port or (443 if scheme == "https" else 80))
    refused = sorted({str(a) for a in addresses if not policy.address_allowed(a)})
    if refused or not addresses:
        raise InvalidInput(f"host {host} resolves to an internal address "
                           f"({', '.join(refused) or 'none'}): callbacks may only reach "
                           "public addresses (or SENTINELLE_CALLBACK_NETWORKS)")
    return url


def check_subscriber(subscriber: object, policy: CallbackPolicy | None = None) -> None:
    """Check every URL of an execute request's ``subscriber``; ``InvalidInput`` names the
    member and the reason (French first, then English)."""
    if subscriber is None:
        return
    if not isinstance(subscriber, dict):
        raise InvalidInput("subscriber : objet attendu / subscriber: expected an object with "
                           "successUri, inProgressUri, failedUri")
    policy = policy or CallbackPolicy.from_env()
    for name in SUBSCRIBER_URIS:
        if name not in subscriber or subscriber[name] is None:
            continue
        try:
            check_url(subscriber[name], policy)
        except InvalidInput as err:
            raise InvalidInput(
                f"subscriber.{name} : adresse de rappel refusée / callback URL refused: "
                f"{err}") from err


__all__ = ["CallbackPolicy", "SUBSCRIBER_URIS", "check_subscriber", "check_url", "is_public",
           "resolve"]
