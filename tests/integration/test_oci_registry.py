"""OCIRegistry and ImageCache against a real registry (docker-registry on 127.0.0.1): no auth, Basic, tokens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from binder_actors.actors.image_cache import ImageCache
from binder_actors.config import BinderConfig
from binder_actors.registries.oci import OCIRegistry, RegistryAuthError, RegistryUnavailable
from serve_app.embedded import free_port
from tests.registry import (
    RunningRegistry,
    TokenService,
    basic_authorization,
    push_image,
    start_registry,
    write_htpasswd,
)

T = TypeVar("T")

USERNAME = "binder-builder"
PASSWORD = "correct-horse-battery-staple"
WRONG_PASSWORD = "not-the-password-at-all"


def with_registry(url: str, use: Callable[[OCIRegistry], Awaitable[T]], **options: object) -> T:
    """Run `use` on a fresh OCIRegistry in its own event loop (its HTTP client is bound to that loop)."""

    async def scenario() -> T:
        registry = OCIRegistry(url, **options)  # type: ignore[arg-type]
        try:
            return await use(registry)
        finally:
            await registry.aclose()

    return asyncio.run(scenario())


def exists(url: str, image: str, **options: object) -> bool:
    return with_registry(url, lambda registry: registry.exists(image), **options)


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    registry = start_registry(tmp_path_factory.mktemp("open-registry"))
    push_image(registry.url, "binder/oci-image", "v1", kind="oci")
    push_image(registry.url, "binder/docker-image", "v1", kind="docker")
    push_image(registry.url, "binder/multi-platform", "v1", as_index=True)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("basic-registry")
    htpasswd = write_htpasswd(root / "htpasswd", USERNAME, PASSWORD)
    registry = start_registry(root, {"htpasswd": {"realm": "binder-tests", "path": str(htpasswd)}})
    push_image(registry.url, "binder/private", "v1", authorization=basic_authorization(USERNAME, PASSWORD))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def token_service() -> Iterator[TokenService]:
    service = TokenService(USERNAME, PASSWORD)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_service: TokenService) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("token-registry")
    registry = start_registry(root, token_service.registry_auth(token_service.write_root_bundle(root / "root.pem")))
    push_token = token_service.mint("repository:binder/private:pull,push")
    push_image(registry.url, "binder/private", "v1", authorization=f"Bearer {push_token}")
    yield registry
    registry.stop()


@pytest.fixture
def token_requests(token_service: TokenService) -> Iterator[list[str]]:
    """The token service's request log, from this test only; resets what a test may have changed."""
    token_service.requests.clear()
    yield token_service.requests
    token_service.lifetime, token_service.fail_next = 300, 0


@pytest.mark.parametrize(
    "image",
    [
        "binder/oci-image:v1",  # OCI image manifest
        "binder/docker-image:v1",  # Docker v2 schema 2 manifest
        "binder/multi-platform:v1",  # OCI index: only found when we accept index media types
    ],
)
def test_pushed_image_exists_whatever_its_manifest_type(open_registry: RunningRegistry, image: str) -> None:
    assert exists(open_registry.url, image)
    assert exists(open_registry.url, f"{open_registry.host}/{image}")


@pytest.mark.parametrize("image", ["binder/oci-image:v2", "binder/never-pushed:v1"])
def test_unknown_tag_or_repository_is_missing_not_an_error(open_registry: RunningRegistry, image: str) -> None:
    assert exists(open_registry.url, image) is False


def test_image_of_another_registry_is_refused_clearly(open_registry: RunningRegistry) -> None:
    with pytest.raises(ValueError, match="BINDER_IMAGE_PREFIX"):
        exists(open_registry.url, "registry.example.org/binder/oci-image:v1")


def test_images_lists_every_pushed_tag(open_registry: RunningRegistry) -> None:
    listed = with_registry(open_registry.url, lambda registry: registry.images())
    pushed = {f"{open_registry.host}/binder/{name}:v1" for name in ("oci-image", "docker-image", "multi-platform")}
    assert pushed <= set(listed)


def test_images_through_token_auth_use_a_catalog_token(token_registry: RunningRegistry, token_requests) -> None:
    listed = with_registry(token_registry.url, lambda registry: registry.images(), username=USERNAME, password=PASSWORD)
    assert f"{token_registry.host}/binder/private:v1" in listed
    assert token_requests[0] == "registry:catalog:*"


def test_basic_auth_with_the_right_credentials_finds_images(basic_registry: RunningRegistry) -> None:
    credentials = {"username": USERNAME, "password": PASSWORD}
    assert exists(basic_registry.url, "binder/private:v1", **credentials)
    assert exists(basic_registry.url, "binder/private:v2", **credentials) is False


def test_basic_auth_with_a_wrong_password_fails_clearly(basic_registry: RunningRegistry) -> None:
    with pytest.raises(RegistryAuthError, match="authentication failed") as raised:
        exists(basic_registry.url, "binder/private:v1", username=USERNAME, password=WRONG_PASSWORD)
    assert WRONG_PASSWORD not in str(raised.value)


def test_registry_wanting_credentials_we_lack_says_which_to_set(basic_registry: RunningRegistry) -> None:
    with pytest.raises(RegistryAuthError, match="BINDER_REGISTRY_USERNAME"):
        exists(basic_registry.url, "binder/private:v1")


def test_bearer_token_flow_finds_images_with_one_token_per_repository(
    token_registry: RunningRegistry, token_requests: list[str]
) -> None:
    async def three_checks(registry: OCIRegistry) -> list[bool]:
        return [await registry.exists(image) for image in ("binder/private:v1", "binder/private:v2", "binder/other:v1")]

    found = with_registry(token_registry.url, three_checks, username=USERNAME, password=PASSWORD)
    assert found == [True, False, False]
    # The token of binder/private served both of its checks; binder/other needed its own scope.
    assert token_requests == ["repository:binder/private:pull", "repository:binder/other:pull"]


def test_expired_token_is_renewed(token_registry: RunningRegistry, token_service: TokenService, token_requests) -> None:
    token_service.lifetime = 1  # we renew at 90% of the lifetime; the registry itself allows clock skew

    async def check_until_renewed(registry: OCIRegistry) -> None:
        async def renewed() -> bool:
            assert await registry.exists("binder/private:v1")
            return len(token_requests) >= 2

        deadline = asyncio.get_running_loop().time() + 10
        while not await renewed():
            assert asyncio.get_running_loop().time() < deadline, "the token was never renewed"
            await asyncio.sleep(0.1)

    with_registry(token_registry.url, check_until_renewed, username=USERNAME, password=PASSWORD)
    assert token_requests == ["repository:binder/private:pull"] * 2


def test_token_service_errors_are_retried(token_registry: RunningRegistry, token_service, token_requests) -> None:
    token_service.fail_next = 2
    assert exists(token_registry.url, "binder/private:v1", username=USERNAME, password=PASSWORD, backoff=0.01)
    assert len(token_requests) == 3


def test_token_service_refusing_the_password_fails_clearly(token_registry: RunningRegistry, token_requests) -> None:
    with pytest.raises(RegistryAuthError, match="authentication failed at the token service") as raised:
        exists(token_registry.url, "binder/private:v1", username=USERNAME, password=WRONG_PASSWORD)
    assert WRONG_PASSWORD not in str(raised.value)


def test_token_url_overrides_the_realm(token_registry: RunningRegistry, token_service: TokenService) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/token"
    with pytest.raises(RegistryUnavailable, match=unreachable):
        exists(token_registry.url, "binder/private:v1", username=USERNAME, password=PASSWORD, token_url=unreachable)
    assert exists(
        token_registry.url, "binder/private:v1", username=USERNAME, password=PASSWORD, token_url=token_service.url
    )


def test_registry_that_is_down_fails_after_retries(all_logs: pytest.LogCaptureFixture) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnavailable, match="failed 3 times .* running and reachable"):
        exists(down, "binder/private:v1", attempts=3, backoff=0.01)
    warnings = [record.getMessage() for record in all_logs.records if record.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(f"attempt={n}/3" in line for n, line in enumerate(warnings, 1)), warnings


def test_secrets_never_reach_messages_or_logs(
    basic_registry: RunningRegistry,
    token_registry: RunningRegistry,
    token_service: TokenService,
    all_logs: pytest.LogCaptureFixture,
) -> None:
    token_service.issued.clear()
    messages = []
    for url in (basic_registry.url, token_registry.url):
        assert exists(url, "binder/private:v1", username=USERNAME, password=PASSWORD)
        with pytest.raises(RegistryAuthError) as raised:
            exists(url, "binder/private:v1", username=USERNAME, password=WRONG_PASSWORD)
        messages.append(str(raised.value))
    assert token_service.issued, "the token flow ran"
    assert any(record.name.startswith("httpx") for record in all_logs.records), "HTTP requests were logged"
    secrets = [
        PASSWORD,
        WRONG_PASSWORD,
        basic_authorization(USERNAME, PASSWORD),
        basic_authorization(USERNAME, WRONG_PASSWORD),
        *token_service.issued,
    ]
    for secret in secrets:
        assert secret not in all_logs.text
        assert not any(secret in message for message in messages)


def test_image_cache_keeps_a_miss_for_its_ttl_and_refresh_sees_the_new_image(
    open_registry: RunningRegistry, tmp_path: Path
) -> None:
    config = BinderConfig(data_dir=tmp_path, registry="oci", registry_url=open_registry.url, image_cache_miss_ttl=3600)
    image = f"{open_registry.host}/binder/cached:v1"

    async def scenario() -> list[bool]:
        cache = ImageCache(config)
        try:
            before = await cache.exists(image)
            push_image(open_registry.url, "binder/cached", "v1")
            cached_miss = await cache.exists(image)  # within the miss TTL: the registry is not asked
            refreshed = await cache.refresh(image)  # what BuildScheduler does after a build
            return [before, cached_miss, refreshed, await cache.exists(image)]
        finally:
            await cache.registry.aclose()

    assert asyncio.run(scenario()) == [False, False, True, True]


def test_image_cache_with_no_miss_ttl_asks_the_registry_each_time(
    open_registry: RunningRegistry, tmp_path: Path
) -> None:
    config = BinderConfig(data_dir=tmp_path, registry="oci", registry_url=open_registry.url, image_cache_miss_ttl=0)
    image = "binder/uncached:v1"

    async def scenario() -> list[bool]:
        cache = ImageCache(config)
        try:
            before = await cache.exists(image)
            push_image(open_registry.url, "binder/uncached", "v1")
            return [before, await cache.exists(image)]
        finally:
            await cache.registry.aclose()

    assert asyncio.run(scenario()) == [False, True]


def test_image_cache_keeps_at_most_its_size_of_missing_images(open_registry: RunningRegistry, tmp_path: Path) -> None:
    config = BinderConfig(
        data_dir=tmp_path,
        registry="oci",
        registry_url=open_registry.url,
        image_cache_miss_ttl=3600,
        image_cache_size=10,
    )

    async def scenario() -> tuple[list[int], bool]:
        cache = ImageCache(config)
        sizes = []
        try:
            for n in range(40):
                assert not await cache.exists(f"binder/never-built-{n}:v1")
                sizes.append((await cache.stats()).missing)
            push_image(open_registry.url, "binder/never-built-0", "v1")
            # the oldest miss was evicted, so the registry is asked again and finds the image
            return sizes, await cache.exists("binder/never-built-0:v1")
        finally:
            await cache.registry.aclose()

    sizes, found_after_eviction = asyncio.run(scenario())
    assert max(sizes) == 10 and sizes[-1] == 10
    assert found_after_eviction
