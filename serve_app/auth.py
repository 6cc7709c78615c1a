"""Authenticated mode (BINDER_AUTH_ENABLED): binder-actors is an OAuth client of its hub, as BinderHub is.

The landing page, /v2, /build and /api/sessions need a logged-in hub user: a browser is sent to the hub's
login and back to the same link (its query kept), through /oauth_callback, which exchanges the hub's code
for the user's token and keeps it in a signed cookie; an API caller sends `Authorization: token <hub API
token>`. Either token is checked with the hub (its answer kept TOKEN_CHECK_SECONDS), so a hub logout
(which revokes the token) logs the browser out here too. Everything else (health, versions, metrics,
badges, static files) stays open. `LoginRequired`, an ASGI middleware, applies `LoginGate`; with auth off
the deployment has no gate and the middleware passes every request straight on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlencode

import jwt
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from binder_actors.caching import SingleFlight, TTLCache
from binder_actors.config import BinderConfig
from binder_actors.events import failed
from binder_actors.hub import HubClient, HubError
from serve_app.access import RequestFacts, request_facts

log = logging.getLogger(__name__)

LOGIN_COOKIE = "binder-actors-login"
STATE_COOKIE = "binder-actors-oauth-state"
CALLBACK_PATH = "/oauth_callback"
LOGOUT_PATH = "/logout"
STATE_SECONDS = 600  # a login started longer ago than this starts again
TOKEN_CHECK_SECONDS = 30.0  # how long the hub's word on a token is believed
KNOWN_TOKENS = 10_000
HUB_USER = "hub_user"  # where the gate leaves the user's name in the request's state


def needs_login(path: str) -> bool:
    """The routes of a logged-in user: the landing page, launch pages and streams, and one's sessions."""
    return path == "/" or path.startswith(("/v2/", "/build/", "/api/sessions"))


def hub_user(scope: Scope) -> str:
    """The logged-in hub user the gate let through ('' with auth off)."""
    return str(scope.get("state", {}).get(HUB_USER, ""))


def safe_next(target: str, base_path: str) -> str:
    """Where a login may send the browser back to: a path of this service, never another site."""
    if target.startswith(base_path) and not target.startswith("//") and "\\" not in target:
        return target
    return base_path


def request_token(authorization: str) -> str:
    """The token of an `Authorization: token <t>` (or `Bearer <t>`) header, '' without one."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() in ("token", "bearer") else ""


class LoginGate:
    """One deployment's OAuth client and the check of who is logged in."""

    def __init__(self, config: BinderConfig) -> None:
        secret = config.hub_api_token.get_secret_value()  # the service's token is its OAuth client secret
        hub_url = config.hub_url.rstrip("/") + "/"
        self.base_path = config.base_path
        self.authorize_url = hub_url + "hub/api/oauth2/authorize"
        self.hub_logout_url = hub_url + "hub/logout"
        self.client_id = config.auth.oauth_client_id
        self.redirect_uri = config.launch_host + CALLBACK_PATH.lstrip("/")
        self.cookie_max_age = config.auth.cookie_max_age
        self.secure = config.launch_host.startswith("https://")
        self._client_secret = secret
        self._key = hmac.new(secret.encode(), b"binder-actors login cookie", hashlib.sha256).hexdigest()
        self.hub = HubClient(config.hub_url, secret)
        self._known: TTLCache[str, str] = TTLCache(KNOWN_TOKENS, TOKEN_CHECK_SECONDS)  # sha256(token) -> user
        self._checks: SingleFlight[str, str] = SingleFlight()

    async def user_of_token(self, token: str) -> str:
        """The hub user of `token`, '' if the hub refuses it; asked at most every TOKEN_CHECK_SECONDS per token."""
        key = hashlib.sha256(token.encode()).hexdigest()
        if key in self._known:
            return self._known[key]

        async def ask() -> str:
            name = await self.hub.user_of_token(token) or ""
            self._known[key] = name
            return name

        return await self._checks.run(key, ask)

    async def logged_in(self, facts: RequestFacts) -> str:
        """The hub user of the request (its Authorization header, else its login cookie), '' if none."""
        token = request_token(facts.headers.get("authorization", ""))
        if token:
            return await self.user_of_token(token)
        login = self._read_login(_cookies(facts).get(LOGIN_COOKIE, ""))
        if login is None:
            return ""
        name, token = login
        return name if await self.user_of_token(token) == name else ""

    def login_redirect(self, facts: RequestFacts) -> tuple[str, dict[str, str]]:
        """(the hub's authorize URL, the state cookie) for a browser to log in and come back to this link."""
        target = facts.raw_path + (f"?{urlencode(facts.query)}" if facts.query else "")
        nonce = secrets.token_urlsafe(16)
        state = jwt.encode(
            {"next": safe_next(target, self.base_path), "nonce": nonce, "exp": int(time.time()) + STATE_SECONDS},
            self._key,
            algorithm="HS256",
        )
        query = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "state": state,
        }
        return f"{self.authorize_url}?{urlencode(query)}", {STATE_COOKIE: self.cookie(nonce, STATE_SECONDS)}

    async def callback(self, facts: RequestFacts) -> tuple[int, str, dict[str, str]]:
        """(status, the page to go back to or the reason of a refusal, cookies) of the hub's redirect back."""
        try:
            state = jwt.decode(facts.query.get("state", ""), self._key, algorithms=["HS256"])
        except jwt.PyJWTError:
            return 400, "The login's state is missing or expired: open the link again.", {}
        if not hmac.compare_digest(str(state.get("nonce", "")), _cookies(facts).get(STATE_COOKIE, "")):
            return 400, "This login was started in another browser: open the link again.", {}
        code = facts.query.get("code", "")
        if not code:
            return 400, "The hub sent no authorization code back: open the link again.", {}
        try:
            token = await self.hub.oauth_token(code, self.client_id, self._client_secret, self.redirect_uri)
            name = await self.user_of_token(token)
        except HubError as error:
            log.warning("login failed: %s", error)
            return 502, f"The hub did not complete the login ({error}); open the link again.", {}
        if not name:
            return 403, "The hub did not accept the login: open the link again.", {}
        log.info("logged in user=%s", name)
        cookies = {LOGIN_COOKIE: self.cookie(self._login(name, token), self.cookie_max_age)}
        cookies[STATE_COOKIE] = self.cookie("", 0)
        return 302, safe_next(str(state.get("next", "")), self.base_path), cookies

    def _login(self, name: str, token: str) -> str:
        claims = {"sub": name, "token": token, "exp": int(time.time()) + self.cookie_max_age}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def _read_login(self, value: str) -> tuple[str, str] | None:
        if not value:
            return None
        try:
            claims = jwt.decode(value, self._key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        except jwt.PyJWTError:
            return None
        return str(claims["sub"]), str(claims.get("token", ""))

    def cookie(self, value: str, max_age: int) -> str:
        """A Set-Cookie value: HttpOnly, for this service's path only; an empty value removes the cookie."""
        attributes = f"Path={self.base_path}; HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
        return f"{value}; Max-Age={max_age if value else 0}; {attributes}"


def _cookies(facts: RequestFacts) -> dict[str, str]:
    # Starlette's lenient parser, as browsers send: one malformed cookie of another application on the
    # same host does not hide the others (the stdlib's SimpleCookie drops the whole header then).
    return cookie_parser(facts.headers.get("cookie", ""))


class LoginRequired:
    """ASGI middleware: the routes `needs_login` names get a logged-in hub user, or a login.

    `gate` is called per request (the middleware is attached before the deployment exists); None means
    auth is off and the request goes straight on.
    """

    def __init__(self, app: ASGIApp, gate: Callable[[], LoginGate | None]) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate() if scope["type"] == "http" else None
        if gate is None:
            await self.app(scope, receive, send)
            return
        facts = request_facts(scope)
        if facts.path == CALLBACK_PATH:
            status, where, cookies = await gate.callback(facts)
            await _answer(send, status, where, cookies)
            return
        if facts.path == LOGOUT_PATH:
            # Out of binder-actors and of the hub (which revokes the token the cookie holds).
            await _answer(send, 302, gate.hub_logout_url, {LOGIN_COOKIE: gate.cookie("", 0)})
            return
        if needs_login(facts.path):
            name = await gate.logged_in(facts)
            if not name:
                await _refuse(send, gate, facts)
                return
            scope.setdefault("state", {})[HUB_USER] = name
        await self.app(scope, receive, send)


LOGIN_MESSAGE = "Log in first: open this link in a browser, or send Authorization: token <your hub API token>."


async def _refuse(send: Send, gate: LoginGate, facts: RequestFacts) -> None:
    """A browser asking for a page goes to the hub's login; an API call or event stream gets a 403."""
    if facts.path.startswith("/build/"):
        body, content_type = failed(LOGIN_MESSAGE, 403).to_sse().encode(), "text/event-stream"
    elif facts.path.startswith("/api/") or request_token(facts.headers.get("authorization", "")):
        body, content_type = json.dumps({"message": LOGIN_MESSAGE}).encode(), "application/json"
    else:
        location, cookies = gate.login_redirect(facts)
        await _answer(send, 302, location, cookies)
        return
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer(send: Send, status: int, where_or_message: str, cookies: dict[str, str]) -> None:
    """A redirect (302) to `where_or_message`, or a refusal saying it, setting `cookies`."""
    headers = [(b"set-cookie", f"{name}={value}".encode("latin-1")) for name, value in cookies.items()]
    if status == 302:
        headers.append((b"location", where_or_message.encode("latin-1")))
        body = b""
    else:
        body = json.dumps({"message": where_or_message}).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
