"""An authenticated deployment (BINDER_AUTH_ENABLED) beside the shared stack, for tests/integration/test_auth.py
and the browser test tests/e2e/test_auth_login.py.

It shares the session's Ray and Serve: its actors live in their own namespace, its hub is a second
embedded hub whose users log in with a shared password (JupyterHub's SharedPasswordAuthenticator), and
its Serve application is mounted at /auth/ beside the default one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from ray import serve

from binder_actors.actors import ActorHandles, ensure_actors, kill_actors
from binder_actors.config import BinderConfig
from binder_actors.hub_models import HubUser
from serve_app.embedded import EmbeddedHub, EmbeddedStack, free_port, hub_api_token, start_hub
from tests.conda_channel import ChannelServer

NAMESPACE = "binder-auth"
PASSWORD = "auth-" + "shared-password-for-tests-only"  # test_secrets.py-style: never in a response or event
NAMED_SERVER_LIMIT = 2


@dataclass
class AuthStack:
    config: BinderConfig
    hub: EmbeddedHub
    actors: ActorHandles
    url: str  # the Binder service, e.g. http://127.0.0.1:PORT/auth/

    def hub_api(self, token: str | None = None) -> httpx.Client:
        """The hub's REST API as the binder service (admin), or as the owner of `token`."""
        token = token or self.config.hub_api_token.get_secret_value()
        return httpx.Client(base_url=self.hub.url + "hub/api/", headers={"Authorization": f"token {token}"}, timeout=30)

    def new_user(self, prefix: str) -> tuple[str, str]:
        """(name, API token) of a new hub user of this test's own, as if they had logged in once."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        with self.hub_api() as api:
            assert api.post(f"users/{name}").status_code == 201
            answer = api.post(f"users/{name}/tokens", json={"note": "test"})
            assert answer.status_code == 201, answer.text
            return name, answer.json()["token"]

    def user(self, name: str) -> HubUser | None:
        with self.hub_api() as api:
            answer = api.get(f"users/{name}")
            return HubUser.model_validate(answer.json()) if answer.status_code == 200 else None


@pytest.fixture(scope="session")
def auth_stack(
    stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory, conda_channel: ChannelServer | None
) -> Iterator[AuthStack]:
    """A second deployment on the session's Ray, in authenticated mode, with a hub of its own."""
    data_dir = tmp_path_factory.mktemp("binder-auth-data")
    url = f"{stack.url}auth/"
    config = BinderConfig(
        data_dir=data_dir,
        port=stack.config.port,
        public_url=url,  # the hub sends logins back to <url>oauth_callback
        namespace=NAMESPACE,
        cull_every=3600,
        auth_enabled=True,
        auth_shared_password=SecretStr(PASSWORD),
        auth_named_server_limit_per_user=NAMED_SERVER_LIMIT,
        # Never the internet: conda-forge is the test channel (or nothing listening, without one).
        conda_channel_alias=conda_channel.url if conda_channel else f"http://127.0.0.1:{free_port()}/",
    )
    hub_dir = data_dir / "hub"
    hub_dir.mkdir(parents=True)
    token = hub_api_token(hub_dir)
    hub = start_hub(config, token)
    config = config.model_copy(update={"hub_url": hub.url, "hub_api_token": SecretStr(token)})
    from serve_app import build_app

    try:
        actors = ensure_actors(config)
        serve.run(build_app(config), name="binder-auth", route_prefix="/auth")
        yield AuthStack(config=config, hub=hub, actors=actors, url=url)
    finally:
        serve.delete("binder-auth")
        hub.stop_all_sessions(token, logged_in_host=config.launch_host)
        kill_actors(NAMESPACE)
        hub.stop()
