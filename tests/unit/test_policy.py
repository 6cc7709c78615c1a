import pytest

from binder_actors.config import BinderConfig, SpecConfig
from binder_actors.policy import refusal, repo_quota

CONFIG = BinderConfig(
    per_repo_quota=10,
    per_repo_quota_higher=50,
    high_quota_specs=["^binder-examples/.*", "^jupyterlab/"],
    spec_config=[SpecConfig(pattern="^binder-examples/requirements", quota=3), SpecConfig(pattern="^no-quota/")],
)


@pytest.mark.parametrize(
    ("spec", "quota"),
    [
        ("someone/repo/HEAD", 10),
        ("binder-examples/conda/HEAD", 50),
        ("Binder-Examples/Conda/HEAD", 50),  # case-insensitive, as BinderHub matches
        ("jupyterlab/jupyterlab/main", 50),
        ("binder-examples/requirements/HEAD", 3),  # spec_config wins over high_quota_specs
        ("no-quota/repo/HEAD", 10),  # an override without a quota changes nothing
        ("x/binder-examples/HEAD", 10),  # patterns match from the start of the spec
    ],
)
def test_repo_quota_follows_binderhub_precedence(spec, quota):
    assert repo_quota(spec, CONFIG) == quota


def test_quota_settings_come_from_json_env_vars(monkeypatch):
    monkeypatch.setenv("BINDER_HIGH_QUOTA_SPECS", '["^org/"]')
    monkeypatch.setenv("BINDER_SPEC_CONFIG", '[{"pattern": "^org/big", "quota": 99}]')
    monkeypatch.setenv("BINDER_PER_REPO_QUOTA_HIGHER", "7")
    config = BinderConfig()
    assert (repo_quota("org/small/HEAD", config), repo_quota("org/big/HEAD", config)) == (7, 99)


def test_the_last_matching_spec_config_wins():
    config = BinderConfig(
        per_repo_quota=10,
        spec_config=[SpecConfig(pattern="^jupyterhub.*", quota=999), SpecConfig(pattern="^jupyterh.*", quota=5)],
    )
    assert repo_quota("jupyterhub/zero-to-jupyterhub-k8s/v0.4", config) == 5
    assert repo_quota("totallynotjupyterhub/zero-to-jupyterhub-k8s/v0.4", config) == 10


SPEC = "jupyterhub/zero-to-jupyterhub-k8s/v0.4"


@pytest.mark.parametrize(
    ("banned", "allowed", "refused"),
    [
        ([], [], False),
        (["^yuvipanda.*"], [], False),
        (["^jupyterhub.*"], [], True),
        ([], ["^jupyterhub.*"], False),
        ([], ["^yuvipanda.*"], True),
        ([".*zero-to-.*"], ["^jupyterhub.*"], True),  # banned wins over allowed
        ([".*ZERO-TO.*"], [], True),  # case-insensitive
    ],
)
def test_banned_and_allowed_specs_as_binderhub(banned, allowed, refused):
    message = refusal(SPEC, BinderConfig(banned_specs=banned, allowed_specs=allowed))
    assert (message is not None) == refused
    if message:
        assert SPEC in message
