"""Which address a request comes from, when a trusted reverse proxy stands in front.

Behind a proxy every connection comes from the proxy's address, so a cap per address would be a
cap for everyone. The client's own address is then in ``X-Forwarded-For``, which each proxy
extends on the right with the address that connected to it; whatever is further left was
written by the client and may be anything. The safe rule (MDN's "X-Forwarded-For",
developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Forwarded-For, and uvicorn's own
``ProxyHeadersMiddleware``): believe the header only when the peer itself is a trusted proxy,
and take the right-most address in it that is not a trusted proxy.

Behind RunPod's HTTP proxy the chain is client -> Cloudflare -> RunPod's load balancer -> pod
(docs.runpod.io/pods/configuration/expose-ports). Cloudflare adds the address that connected to
it to ``X-Forwarded-For`` (and sends it as ``CF-Connecting-IP``;
developers.cloudflare.com/fundamentals/reference/http-headers). RunPod documents neither the
headers its load balancer passes on nor its addresses, so nothing is trusted by default; see
docs/security.md for how to set ``trusted_proxies`` for a pod.
"""

from __future__ import annotations

import ipaddress

from airvoice.config import Network

MAX_KEY_CHARS = 64
"""An unparsable forwarded entry is kept as text, cut to this length (bounded memory)."""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 192.0.2.7:443
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    """Whether ``address`` is one of the trusted proxies."""
    ip = _ip(address) if trusted else None
    return ip is not None and any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address to count a request against: ``peer`` unless ``peer`` is a trusted proxy;
    then the right-most ``X-Forwarded-For`` entry that is not a trusted proxy (the left-most
    when all are, ``peer`` when there is no header)."""
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    entries = [e.strip() for e in forwarded_for.split(",") if e.strip()]
    for entry in reversed(entries):
        if not is_trusted(entry, trusted):
            return _key(entry)
    return _key(entries[0]) if entries else peer


def _key(entry: str) -> str:
    ip = _ip(entry)
    return str(ip) if ip is not None else entry[:MAX_KEY_CHARS]
