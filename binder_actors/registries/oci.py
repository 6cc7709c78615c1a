"""Any registry that speaks the OCI distribution API: does `<name>:<tag>` have a manifest there?

Anonymous, Basic and Bearer-token (Docker token auth) access, retries on transient failures.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from binder_actors.retry import RetryPolicy

log = logging.getLogger(__name__)

# Every manifest kind an image may be stored as; without them some registries answer 404 for
# images pushed as OCI indexes, or convert to the long-obsolete schema 1.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN"})
# Listing images is optional in the distribution spec; these answers mean "not offered here".
CATALOG_REFUSED = frozenset({401, 403, 404, 405})

_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$")
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """The registry answered something other than "found" or "not found"."""


class RegistryAuthError(RegistryError):
    """The registry or its token service refused our credentials (or wants some we lack)."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer, or kept failing, through every retry."""


@dataclass(frozen=True)
class ImageReference:
    """`[host/]repository(:tag|@digest)` split apart; `host` is "" when the name has none."""

    host: str
    repository: str
    reference: str


def parse_image(image: str) -> ImageReference:
    """Split an image name as Docker does: a first part with `.` or `:` (or localhost) is a host."""
    host, rest = "", image
    first, slash, remainder = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, rest = first, remainder
    if "@" in rest:
        repository, _, reference = rest.partition("@")
        valid_reference = bool(_DIGEST_RE.match(reference))
    else:
        repository, colon, reference = rest.rpartition(":")
        if not colon or "/" in reference:
            repository, reference = rest, "latest"
        valid_reference = bool(_TAG_RE.match(reference))
    if not (_REPOSITORY_RE.match(repository) and valid_reference):
        raise ValueError(f"{image!r} is not an image name ([host/]repository:tag, lowercase repository).")
    return ImageReference(host, repository, reference)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm: ..., ...})."""
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM_RE.findall(params))


def _error_codes(response: httpx.Response) -> set[str]:
    try:
        errors = response.json().get("errors") or []
        return {str(error.get("code")) for error in errors}
    except (ValueError, AttributeError):
        return set()


def _error_detail(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        detail = "; ".join(f"{error.get('code')}: {error.get('message')}" for error in errors)
    except (ValueError, AttributeError):
        detail = response.text
    return f"HTTP {response.status_code}" + (f" ({detail[:300]})" if detail else "")


def _worth_retrying(response: httpx.Response) -> bool:
    """A 5xx or a 429 may pass; any other answer is the registry's last word."""
    return response.status_code >= 500 or response.status_code == 429


def _failure(outcome: httpx.Response | BaseException) -> str:
    """A failed attempt in a few words, for a log line or the final error (redact it before use)."""
    if isinstance(outcome, httpx.Response):
        return f"HTTP {outcome.status_code}"
    return f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__


class OCIRegistry:
    """One registry at `url`, one HTTP client; credentials and tokens never leave this object."""

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        token_url: str = "",
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.2,
    ) -> None:
        # BinderConfig checked `url` when it loaded: an http(s) URL with a host and no credentials.
        self.url = url.rstrip("/")
        self.host = urlsplit(url).netloc
        self.token_url = token_url
        self.attempts = attempts
        self._retry = RetryPolicy(attempts=attempts, first_delay=backoff)
        self._password = password
        self._basic = ""
        if username:
            self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        # After one challenge we know the scheme and answer it up front, saving a round trip a call.
        self._scheme = ""
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, monotonic expiry)
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, follow_redirects=True)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def exists(self, image: str) -> bool:
        """True when the registry has a manifest for the image's tag; False for "not found"."""
        ref = self._reference(image)
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        scope = f"repository:{ref.repository}:pull"
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        response = await self._send("HEAD", path, scope, headers)
        if not response.is_success and response.status_code != 404:
            # Some registries refuse HEAD on manifests, and a HEAD answer has no body to explain an error.
            response = await self._send("GET", path, scope, headers)
        if response.is_success:
            return True
        if response.status_code == 404 or _error_codes(response) & NOT_FOUND_CODES:
            return False
        raise self._error(RegistryError, f"{self.url} answered {_error_detail(response)} for {image}.")

    async def images(self) -> list[str]:
        """Every tag of every repository, as `<host>/<repository>:<tag>`; [] when listing is refused."""
        try:
            repositories = await self._paged("/v2/_catalog", "registry:catalog:*", "repositories")
        except RegistryAuthError:  # e.g. Docker Hub: our token is good for pulls, never for the catalog
            repositories = None
        if repositories is None:
            log.warning("registry does not offer its catalog registry=%s", self.url)
            return []
        found = []
        for repository in repositories:
            tags = await self._paged(f"/v2/{repository}/tags/list", f"repository:{repository}:pull", "tags")
            found.extend(f"{self.host}/{repository}:{tag}" for tag in sorted(tags or []))
        return found

    def _reference(self, image: str) -> ImageReference:
        ref = parse_image(image)
        if ref.host and ref.host != self.host:
            raise ValueError(
                f"{image!r} lives in registry {ref.host}, but this service checks {self.url} "
                "(BINDER_REGISTRY_URL); make BINDER_IMAGE_PREFIX start with that registry's host."
            )
        return ref

    async def _paged(self, path: str, scope: str, key: str) -> list[str] | None:
        """Follow `Link: <...>; rel="next"` pages; None when the registry refuses to list."""
        items: list[str] = []
        next_path: str | None = f"{path}?n=1000"
        while next_path:
            response = await self._send("GET", next_path, scope, {})
            if response.status_code in CATALOG_REFUSED:
                return None
            if not response.is_success:
                raise self._error(RegistryError, f"{self.url} answered {_error_detail(response)} for {path}.")
            items.extend(response.json().get(key) or [])
            next_path = response.links.get("next", {}).get("url")
        return items

    async def _send(self, method: str, path: str, scope: str, headers: dict[str, str]) -> httpx.Response:
        """One request, answering a 401 challenge once with our credentials or a fresh token."""
        response = await self._retrying(method, path, headers={**headers, **self._authorization(scope)})
        if response.status_code != 401:
            return response
        self._tokens.pop(scope, None)
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "bearer":
            authorization = "Bearer " + await self._fetch_token(params, scope)
        elif scheme == "basic" and self._basic:
            authorization = self._basic
        else:
            raise self._error(
                RegistryAuthError,
                f"{self.url} asks for credentials ({scheme or 'no scheme given'}): set BINDER_REGISTRY_USERNAME "
                "and BINDER_REGISTRY_PASSWORD.",
            )
        self._scheme = scheme
        response = await self._retrying(method, path, headers={**headers, "Authorization": authorization})
        if response.status_code == 401:
            self._tokens.pop(scope, None)
            raise self._error(
                RegistryAuthError,
                f"authentication failed at {self.url} for {scope}: the registry refused the "
                f"{'token' if scheme == 'bearer' else 'username and password'}; check BINDER_REGISTRY_USERNAME "
                "and BINDER_REGISTRY_PASSWORD.",
            )
        return response

    def _authorization(self, scope: str) -> dict[str, str]:
        token, expiry = self._tokens.get(scope, ("", 0.0))
        if token and time.monotonic() < expiry:
            return {"Authorization": f"Bearer {token}"}
        if self._scheme == "basic" and self._basic:
            return {"Authorization": self._basic}
        return {}

    async def _fetch_token(self, challenge: dict[str, str], scope: str) -> str:
        """A token from the realm of a Bearer challenge (Docker token auth), cached until it expires."""
        realm = self.token_url or challenge.get("realm", "")
        if not realm:
            raise self._error(RegistryAuthError, f"{self.url} asks for a token but names no realm to get it from.")
        params = {"scope": challenge.get("scope") or scope}
        if "service" in challenge:
            params["service"] = challenge["service"]
        headers = {"Authorization": self._basic} if self._basic else {}
        response = await self._retrying("GET", realm, headers=headers, params=params)
        if response.status_code in (401, 403):
            raise self._error(
                RegistryAuthError,
                f"authentication failed at the token service {realm} ({response.status_code}): check "
                "BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD.",
            )
        try:
            response.raise_for_status()
            answer = response.json()
            token = str(answer.get("token") or answer["access_token"])
            lifetime = float(answer.get("expires_in") or 60)  # the token spec's default
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError, AttributeError):
            raise self._error(
                RegistryError, f"the token service {realm} answered HTTP {response.status_code} without a token."
            ) from None
        # Renew a little early so a token never expires between our check and the registry's.
        self._tokens[scope] = (token, time.monotonic() + lifetime * 0.9)
        return token

    async def _retrying(
        self, method: str, url: str, headers: dict[str, str], params: dict[str, str] | None = None
    ) -> httpx.Response:
        """The request, repeated with a doubling delay on transport errors, 5xx and 429."""

        def log_failure(attempt: int, outcome: httpx.Response | BaseException) -> None:
            log.warning(
                "registry request failed url=%s attempt=%d/%d error=%s",
                url,
                attempt,
                self.attempts,
                self._redact(_failure(outcome)),
            )

        try:
            response = await self._retry.call(
                lambda: self._client.request(method, url, headers=headers, params=params),
                retry_on_error=lambda error: isinstance(error, httpx.TransportError),
                retry_on_result=_worth_retrying,
                on_failure=log_failure,
            )
        except httpx.TransportError as error:
            failure = _failure(error)
        else:
            if not _worth_retrying(response):
                return response
            failure = _failure(response)
        raise self._error(
            RegistryUnavailable,
            f"{url if url.startswith('http') else self.url + url} failed {self.attempts} times "
            f"(last: {failure}); check that the registry is running and reachable.",
        )

    def _redact(self, text: str) -> str:
        """Belt and braces: no password, Basic header or token may reach a message or a log."""
        secrets = [self._password, self._basic, *(token for token, _ in self._tokens.values())]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _error(self, kind: type[RegistryError], message: str) -> RegistryError:
        return kind(self._redact(message))
