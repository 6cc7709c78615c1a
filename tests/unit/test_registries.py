"""Image references and auth challenges as the OCI registry client reads them; the registry config picks."""

from __future__ import annotations

import pytest

from binder_actors.actors.image_cache import make_registry
from binder_actors.config import BinderConfig
from binder_actors.registries.local import LocalImageStore
from binder_actors.registries.oci import ImageReference, OCIRegistry, parse_challenge, parse_image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("binder-abc123:0123abcd", ImageReference("", "binder-abc123", "0123abcd")),
        ("org/binder-abc123:v1", ImageReference("", "org/binder-abc123", "v1")),
        ("127.0.0.1:5000/binder/x-1:v1", ImageReference("127.0.0.1:5000", "binder/x-1", "v1")),
        ("localhost/x:v1", ImageReference("localhost", "x", "v1")),
        ("registry.example.org/a/b/c", ImageReference("registry.example.org", "a/b/c", "latest")),
        ("host:5000/x@sha256:" + "a" * 64, ImageReference("host:5000", "x", "sha256:" + "a" * 64)),
        ("a__b.c-d:T_1.2-3", ImageReference("", "a__b.c-d", "T_1.2-3")),
    ],
)
def test_image_names_split_into_host_repository_and_reference(image: str, expected: ImageReference) -> None:
    assert parse_image(image) == expected


@pytest.mark.parametrize(
    "image", ["UPPER/case:v1", "x:-tag", "x:", "a//b:v1", "x@notadigest", "-x:v1", "x:" + "t" * 129]
)
def test_impossible_image_names_are_refused(image: str) -> None:
    with pytest.raises(ValueError, match="not an image name"):
        parse_image(image)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.example.org/token",service="registry.example.org",scope="repository:a/b:pull"',
            (
                "bearer",
                {
                    "realm": "https://auth.example.org/token",
                    "service": "registry.example.org",
                    "scope": "repository:a/b:pull",
                },
            ),
        ),
        ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
        ("", ("", {})),
    ],
)
def test_auth_challenges_give_scheme_and_parameters(header: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_challenge(header) == expected


def test_registry_setting_picks_the_registry(tmp_path) -> None:
    assert isinstance(make_registry(BinderConfig(data_dir=tmp_path)), LocalImageStore)
    oci = make_registry(BinderConfig(data_dir=tmp_path, registry="oci", registry_url="http://127.0.0.1:5000"))
    assert isinstance(oci, OCIRegistry) and oci.host == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "BINDER_REGISTRY=oci needs one"),
        ("127.0.0.1:5000", "not an http"),
        ("https://user:pw@registry.example.org", "BINDER_REGISTRY_PASSWORD instead"),
    ],
)
def test_oci_registry_without_a_usable_url_is_refused_clearly(tmp_path, url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        make_registry(BinderConfig(data_dir=tmp_path, registry="oci", registry_url=url))
    assert "pw@" not in str(raised.value)


def test_registry_password_never_shows_in_the_config(monkeypatch) -> None:
    monkeypatch.setenv("BINDER_REGISTRY_PASSWORD", "s3cr3t-registry")
    config = BinderConfig()
    assert "s3cr3t-registry" not in repr(config) and "s3cr3t-registry" not in config.model_dump_json()
    assert config.registry.password.get_secret_value() == "s3cr3t-registry"
