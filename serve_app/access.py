"""Access control as BinderHub has it: banned networks, a per-IP launch rate limit, build tokens, CORS.

`AccessPolicy.check` decides from the facts of a request (pure); `AccessControl`, an ASGI middleware,
applies its verdict to every request the ingress serves.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from binder_actors.config import BinderConfig
from binder_actors.events import failed
from binder_actors.providers import InvalidSpec
from serve_app.paths import provider_and_spec

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RATE_LIMIT_PERIOD = 3600  # BINDER_RATE_LIMIT counts launches per hour, as BinderHub's default period
PRUNE_EVERY = 600.0
API_PREFIXES = ("/api/", "/versions", "/health")
PAGE_PREFIXES = ("/v2/", "/repo/")  # and "/" and "/about": what API-only mode does not serve


def parse_networks(value: Mapping[str, str] | list[str]) -> list[tuple[IPNetwork, str]]:
    """(network, message) pairs from `{cidr: message}` or `[cidr, ...]` (the message is then the CIDR).

    BinderConfig refused any CIDR that is not a network when it loaded (config_checks.networks).
    """
    entries = value.items() if isinstance(value, Mapping) else [(cidr, cidr) for cidr in value]
    return [(ipaddress.ip_network(cidr.strip(), strict=False), message) for cidr, message in entries]


def parse_address(value: str) -> IPAddress | None:
    """The address in `value` (IPv4-mapped IPv6 taken as IPv4), or None when it is not one."""
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def matching_network(ip: str, networks: list[tuple[IPNetwork, str]]) -> tuple[IPNetwork, str] | None:
    """The first (network, message) containing `ip`, or None."""
    address = parse_address(ip)
    if address is None:
        return None
    for network, message in networks:
        if address.version == network.version and address in network:
            return network, message
    return None


def client_ip(peer: str, forwarded_for: str | None, trusted_proxies: list[tuple[IPNetwork, str]]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read from the right and the first hop that is not a
    trusted proxy is the client: entries left of it were written by the client and prove nothing.
    """
    if not forwarded_for or not trusted_proxies or matching_network(peer, trusted_proxies) is None:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if matching_network(hop, trusted_proxies) is None:
            return hop
    return hops[0] if hops else peer


@dataclass(frozen=True)
class RateLimitState:
    """What the x-ratelimit-* headers say: the limit, what is left of it, and when it resets (epoch seconds)."""

    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(self.remaining, 0)),
            "x-ratelimit-reset": str(self.reset),
        }


class RateLimitExceeded(Exception):
    def __init__(self, state: RateLimitState, retry_after: int) -> None:
        super().__init__(
            f"You have launched {state.limit} times in the last hour from your address, the limit of this Binder. "
            f"Please try again in {retry_after} seconds."
        )
        self.state = state
        self.retry_after = retry_after


class RateLimiter:
    """A fixed window per key, as BinderHub's: the whole allowance may be used at once, and it
    comes back in full when the window that the key's first request opened ends."""

    def __init__(self, limit: int, period: int = RATE_LIMIT_PERIOD, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock
        self._windows: dict[str, list[int]] = {}  # key -> [used, reset]
        self._pruned = clock()

    def increment(self, key: str) -> RateLimitState:
        """Count one request of `key`; raises RateLimitExceeded when it is over the limit."""
        now = self.clock()
        if now - self._pruned > PRUNE_EVERY:  # forget finished windows, so memory follows active clients
            self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
            self._pruned = now
        window = self._windows.get(key)
        if window is None or window[1] <= now:
            window = self._windows[key] = [0, math.ceil(now) + self.period]
        window[0] += 1
        state = RateLimitState(self.limit, self.limit - window[0], window[1])
        if window[0] > self.limit:
            raise RateLimitExceeded(state, max(math.ceil(window[1] - now), 0))
        return state


class InvalidBuildToken(Exception):
    pass


def issue_build_token(secret: str, provider_spec: str, origin: str, expires_in: int, now: float | None = None) -> str:
    """The HS256 build token a /v2 page hands to its /build stream (BinderHub's claims: aud, origin, exp)."""
    issued = int(time.time() if now is None else now)
    claims = {"exp": issued + expires_in, "aud": provider_spec, "origin": origin}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_build_token(
    token: str, secret: str, provider_spec: str, origin: str, *, check_origin: bool = True
) -> dict[str, Any]:
    """The claims of a valid token for `provider_spec`; raises InvalidBuildToken saying why not."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], audience=provider_spec, options={"require": ["exp", "aud"]}
        )
    except jwt.ExpiredSignatureError:
        raise InvalidBuildToken("the build token has expired; reload the launch page") from None
    except jwt.InvalidAudienceError:
        raise InvalidBuildToken("the build token was made for another repository") from None
    except jwt.PyJWTError:
        raise InvalidBuildToken("the build token is not valid") from None
    if check_origin and claims.get("origin") != origin:
        raise InvalidBuildToken("the build token was made for another site") from None
    return claims


def token_origin(headers: Mapping[str, str]) -> str:
    """The origin a build token is bound to: the Origin header's host[:port], else the Host header."""
    origin = headers.get("origin")
    if origin:
        return urlparse(origin).netloc
    return headers.get("host", "")


def accepts_event_stream(accept: str | None) -> bool:
    """False only when the Accept header explicitly leaves text/event-stream out (or gives it q=0).

    The most specific media range that matches decides, as in RFC 9110: `*/*, text/event-stream;q=0`
    refuses, `text/html` refuses, no header or `*/*` accepts.
    """
    if not accept or not accept.strip():
        return True
    best: tuple[int, float] | None = None  # (specificity, q)
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        specificity = {"text/event-stream": 2, "text/*": 1, "*/*": 0, "*": 0}.get(media.lower())
        if specificity is None:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best is not None and best[1] > 0


def build_only_requested(value: str | None, api_only: bool) -> bool:
    """`build_only=true` of a /build request; raises InvalidSpec (a 400 `failed` event) without API-only mode."""
    if (value or "").lower() != "true":
        return False
    if not api_only:
        raise InvalidSpec(
            "Building without launching (build_only=true) is only allowed in API-only mode; "
            "the operator can turn it on with BINDER_API_ONLY=true."
        )
    return True


@dataclass(frozen=True)
class RequestFacts:
    """What access control looks at, taken from the ASGI scope."""

    method: str
    path: str  # below the base URL, starting with /
    raw_path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    peer: str


@dataclass
class Verdict:
    """Pass with `headers` added to the response, or refuse with `status` and `message`."""

    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    event_stream: bool = False  # a refusal of /build goes out as a `failed` event

    @property
    def refused(self) -> bool:
        return self.status >= 400


def route_kind(path: str) -> str:
    """`build`, `api`, `page`, `versions` or `other`: what access control treats alike."""
    if path.startswith("/build/"):
        return "build"
    if path == "/versions":
        return "versions"
    if path.startswith(API_PREFIXES):
        return "api"
    if path in ("/", "/about") or path.startswith(PAGE_PREFIXES):
        return "page"
    return "other"


class AccessPolicy:
    """One deployment's access rules; the rate limiter's counts live in this replica."""

    def __init__(self, config: BinderConfig, clock: Callable[[], float] = time.time) -> None:
        self.ban_networks = parse_networks(config.access.ban_networks)
        self.trusted_proxies = parse_networks(config.access.trusted_proxies)
        self.rate_limiter = RateLimiter(config.access.rate_limit, clock=clock) if config.access.rate_limit > 0 else None
        self.token_secret = config.access.build_token_secret.get_secret_value()
        self.token_expires = config.access.build_token_expires
        self.check_origin = config.access.build_token_check_origin
        self.cors_allow_origin = config.access.cors_allow_origin
        self.api_only = config.api_only

    def page_token(self, provider_spec: str, headers: Mapping[str, str]) -> str | None:
        """A build token for the page of `provider_spec` (None when tokens are off)."""
        if not self.token_secret:
            return None
        return issue_build_token(self.token_secret, provider_spec, token_origin(headers), self.token_expires)

    def check(self, request: RequestFacts) -> Verdict:
        kind = route_kind(request.path)
        verdict = Verdict(event_stream=kind == "build")
        if self.cors_allow_origin and kind in ("build", "api", "versions"):
            verdict.headers.update(
                {"access-control-allow-origin": self.cors_allow_origin, "access-control-allow-headers": "cache-control"}
            )
        ip = client_ip(request.peer, request.headers.get("x-forwarded-for"), self.trusted_proxies)
        banned = matching_network(ip, self.ban_networks) if kind != "versions" else None  # versions: as BinderHub
        if banned is not None:
            log.warning("refused banned client ip=%s network=%s", ip, banned[0])
            return self._refuse(verdict, 403, f"Requests from {banned[1]} are not allowed.")
        if self.api_only and kind == "page":
            return self._refuse(
                verdict, 404, "This Binder runs in API-only mode: it serves /build/<provider>/<spec>, not web pages."
            )
        if request.method == "OPTIONS" and verdict.headers:
            verdict.headers["access-control-allow-methods"] = "GET, OPTIONS"
            verdict.status = 204  # a CORS preflight: answered here, with the headers above
            return verdict
        if kind == "build":
            return self._check_build(request, ip, verdict)
        return verdict

    def _check_build(self, request: RequestFacts, ip: str, verdict: Verdict) -> Verdict:
        if not accepts_event_stream(request.headers.get("accept")):
            verdict.event_stream = False  # the client said it does not read event streams
            return self._refuse(verdict, 406, "/build answers with text/event-stream; send Accept: text/event-stream.")
        token = request.query.get("build_token")
        if token and self.token_secret:
            try:
                provider, spec = provider_and_spec(request.raw_path, "build")
                verify_build_token(
                    token,
                    self.token_secret,
                    f"{provider}/{spec}",
                    token_origin(request.headers),
                    check_origin=self.check_origin,
                )
            except (InvalidBuildToken, InvalidSpec) as error:
                return self._refuse(verdict, 403, f"Invalid build token: {error}.")
            return verdict  # a page we served asked: not rate limited, as in BinderHub
        if self.rate_limiter is not None:
            try:
                verdict.headers.update(self.rate_limiter.increment(ip).headers())
            except RateLimitExceeded as error:
                log.info("rate limit exceeded ip=%s", ip)
                verdict.headers.update(error.state.headers())
                verdict.headers["retry-after"] = str(error.retry_after)
                return self._refuse(verdict, 429, str(error))
        return verdict

    @staticmethod
    def _refuse(verdict: Verdict, status: int, message: str) -> Verdict:
        verdict.status = status
        verdict.message = message
        return verdict


def request_facts(scope: Scope) -> RequestFacts:
    path = scope.get("path", "/")
    root = scope.get("root_path", "").rstrip("/")
    if root and path.startswith(root):  # Serve's route_prefix (the base URL) is the root path
        path = path[len(root) :] or "/"
    raw = scope.get("raw_path")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    client = scope.get("client")
    return RequestFacts(
        method=scope.get("method", "GET"),
        path=path,
        raw_path=raw.decode("latin-1") if raw else path,
        query={name: values[-1] for name, values in query.items()},
        headers={name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])},
        peer=client[0] if client else "",
    )


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class AccessControl:
    """ASGI middleware: refuses what the policy refuses, adds its headers to what it lets through.

    `policy` is called per request, so the middleware can be attached before the deployment exists.
    """

    def __init__(self, app: ASGIApp, policy: Callable[[], AccessPolicy]) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        verdict = self.policy().check(request_facts(scope))
        if verdict.status == 204 or verdict.refused:
            await self._answer(send, verdict)
            return
        extra = _encoded(verdict.headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _answer(send: Send, verdict: Verdict) -> None:
        if verdict.status == 204:
            body, content_type = b"", "text/plain"
        elif verdict.event_stream:
            # EventSource does not read the body of a non-200 answer, but fetch-based clients and curl do;
            # the non-200 status also stops EventSource from reconnecting in a loop against the limit.
            body, content_type = failed(verdict.message, verdict.status).to_sse().encode(), "text/event-stream"
        else:
            body, content_type = json.dumps({"message": verdict.message}).encode(), "application/json"
        headers = {**verdict.headers, "content-type": content_type, "content-length": str(len(body))}
        await send({"type": "http.response.start", "status": verdict.status, "headers": _encoded(headers)})
        await send({"type": "http.response.body", "body": body})
