"""The I/O side of resolution: one HTTP client, timeouts, ETag memory and safe redirect following.

Providers' `resolve` take an `Upstream`; RefResolver owns one for its lifetime. Errors become
`ResolveError`s whose messages name the upstream but never a credential.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from binder_actors.caching import LRUCache
from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.providers.base import ResolveError

log = logging.getLogger(__name__)

USER_AGENT = "binder-actors"
MAX_REDIRECTS = 10
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


def _host_addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []  # the request itself will fail with a clear message
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def check_redirect_target(url: str, *, allow_private: bool) -> None:
    """Refuse a redirect into link-local or metadata addresses, and into private ones unless allowed.

    A DOI's landing URL is chosen by whoever registered it, so following it blindly would let a
    link make this service fetch from inside its own network (SSRF).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ResolveError(f"Refusing to follow a redirect to {url!r}: only http(s) URLs are followed.", 400)
    host = parts.hostname.lower()
    if host in _METADATA_HOSTS:
        raise ResolveError(f"Refusing to follow a redirect to the metadata host {host}.", 400)
    for address in _host_addresses(host):
        if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
            raise ResolveError(f"Refusing to follow a redirect to {host}: a link-local or reserved address.", 400)
        if (address.is_private or address.is_loopback) and not allow_private:
            raise ResolveError(f"Refusing to follow a redirect to {host}: a private or loopback address.", 400)


class Upstream:
    """What providers need to reach their upstreams; one per RefResolver (or per CLI call)."""

    def __init__(self, config: BinderConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.settings: ProviderSettings = config.providers
        self.timeout = config.upstream_timeout
        self.allow_local_repos = config.allow_local_repos
        self.http = http or httpx.AsyncClient(
            timeout=config.upstream_timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )
        # url -> (etag, value): a 304 answer costs GitHub no rate limit. One per cached ref at most.
        self._etags: LRUCache[str, tuple[str, Any]] = LRUCache(config.ref_cache_size)
        self.requests = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures become ResolveError naming `what`, not the URL's query."""
        self.requests += 1
        try:
            return await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ResolveError(f"Timed out after {self.timeout:g}s asking {what}.", 504) from None
        except httpx.HTTPError as error:
            raise ResolveError(f"Could not reach {what}: {type(error).__name__}.", 502) from None

    async def get_json(self, url: str, *, what: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """GET a JSON document; 404 and 410 raise ResolveError(404), other failures 502."""
        response = await self.request("GET", url, what=what, headers=headers, **kwargs)
        if response.status_code in (404, 410):
            raise ResolveError(f"{what} was not found.", 404)
        if response.status_code >= 400:
            raise ResolveError(f"{what} answered {response.status_code}.", 502)
        try:
            return response.json()
        except ValueError:
            raise ResolveError(f"{what} did not answer with JSON.", 502) from None

    def etag_for(self, url: str) -> tuple[str, Any] | None:
        return self._etags.get(url)

    def remember_etag(self, url: str, etag: str | None, value: Any) -> None:
        if not etag:
            return
        self._etags[url] = (etag, value)

    async def follow_redirects(self, url: str, *, what: str) -> str:
        """The URL `url` finally redirects to, every hop checked by `check_redirect_target`."""
        current = url
        for _ in range(MAX_REDIRECTS):
            response = await self.request("GET", current, what=what)
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                current = urljoin(current, response.headers["location"])
                check_redirect_target(current, allow_private=self.allow_local_repos)
                continue
            if response.status_code == 404:
                raise ResolveError(f"{what} was not found.", 404)
            if response.status_code >= 400:
                raise ResolveError(f"{what} answered {response.status_code}.", 502)
            return current
        raise ResolveError(f"{what} redirected more than {MAX_REDIRECTS} times.", 502)

    async def resolve_doi(self, doi: str) -> str:
        """The landing URL a DOI leads to through the DOI resolver."""
        base = self.settings.doi_resolver_url.rstrip("/")
        return await self.follow_redirects(f"{base}/{doi}", what=f"the DOI {doi}")
