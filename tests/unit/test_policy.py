import pytest

from binder_actors.config import BinderConfig, ConfigError, SpecConfig
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


def test_spec_config_in_binderhubs_own_shape_pastes_as_it_is(monkeypatch):
    monkeypatch.setenv("BINDER_SPEC_CONFIG", '[{"pattern": "^org/big", "config": {"quota": 99}}]')
    monkeypatch.setenv("BINDER_PER_REPO_QUOTA", "5")
    config = BinderConfig()
    assert (repo_quota("org/big/HEAD", config), repo_quota("org/small/HEAD", config)) == (99, 5)


@pytest.mark.parametrize(
    "spec_config",
    [
        [{"pattern": "^x", "config": {"quota": 1, "memory": "2G"}}],  # a key binder-actors does not have
        [{"pattern": "^x", "config": 3}],
        [{"pattern": "(", "config": {"quota": 1}}],
    ],
)
def test_a_spec_config_it_cannot_honour_is_refused_at_load(spec_config):
    with pytest.raises(ConfigError):
        BinderConfig(spec_config=spec_config)


PER_PROVIDER = BinderConfig(
    per_repo_quota=10,
    per_repo_quota_higher=50,
    banned_specs=["^everywhere-banned/"],
    provider_specs={
        "GitHubRepoProvider": {
            "banned_specs": ["^gh-banned/"],
            "high_quota_specs": ["^course/"],
            "spec_config": [{"pattern": "^course/tiny", "config": {"quota": 2}}],
        },
        "gl": {"allowed_specs": ["^group%2Fonly"]},
    },
)


@pytest.mark.parametrize(
    ("provider", "spec", "refused", "quota"),
    [
        ("gh", "gh-banned/repo/HEAD", True, 10),
        ("git", "gh-banned/repo/HEAD", False, 10),  # another provider's ban does not apply
        ("gh", "everywhere-banned/repo/HEAD", True, 10),  # the global lists apply to every provider
        ("gh", "course/big/HEAD", False, 50),
        ("gh", "course/tiny/HEAD", False, 2),  # the provider's spec_config wins, as the last match
        ("git", "course/big/HEAD", False, 10),
        ("gl", "group%2Fonly/HEAD", False, 10),
        ("gl", "group%2Fother/HEAD", True, 10),  # GitLab allows only its list
        ("gh", "group%2Fother/HEAD", False, 10),
    ],
)
def test_each_provider_has_its_own_rules_beside_the_global_ones(provider, spec, refused, quota):
    assert (refusal(spec, PER_PROVIDER, provider) is not None) == refused
    assert repo_quota(spec, PER_PROVIDER, provider) == quota


def test_an_unknown_provider_in_provider_specs_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="BINDER_PROVIDER_SPECS.*'GitHub' is not a provider"):
        BinderConfig(provider_specs={"GitHub": {"banned_specs": ["x"]}})
