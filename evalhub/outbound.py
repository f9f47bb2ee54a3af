"""URLs evalhub calls out to (webhooks, HTTP judges): one home for the rule of which are allowed.

Only http(s) with a host, and only public addresses unless an admin allows private ones for that use:
every address the host resolves to is checked, so a name pointing at 127.0.0.1 or 10.x is refused like
the address itself. No Django settings are read here; each caller passes its own switch and names its
own form field, so the error lands on the right field.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from evalhub.errors import ValidationFailed


def address_refused(address: str) -> bool:
    """Loopback, private, link-local, reserved, multicast or unspecified (also as an IPv4-mapped IPv6)."""
    ip = ipaddress.ip_address(address)
    return bool(
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast
        or ip.is_unspecified or (ip.version == 6 and ip.ipv4_mapped is not None and address_refused(str(ip.ipv4_mapped)))
    )  # fmt: skip


def check_outbound_url(url: str, *, what: str, field: str, allow_private: bool, allow_setting: str) -> str:
    """The stripped URL, or ``ValidationFailed`` on ``field``. ``what`` names the use in messages
    ("webhook", "judge endpoint"); ``allow_setting`` is the setting an admin turns on to allow private
    addresses for it."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            f"A {what} URL is http:// or https:// with a host.", fields={field: ["http(s) only."]}
        )
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise ValidationFailed(
            f"The {what} host {parts.hostname!r} does not resolve.", fields={field: ["Unknown host."]}
        ) from exc
    refused = sorted({str(info[4][0]) for info in infos if address_refused(str(info[4][0]))})
    if refused:
        raise ValidationFailed(
            f"The {what} host {parts.hostname!r} resolves to a loopback, private or link-local address "
            f"({', '.join(refused)}); an admin can allow those with {allow_setting}.",
            fields={field: ["Private address refused."]},
        )
    return url
