# The embedded JupyterHub: temporary users started by binder-actors' SessionManager, one spawner per builder.
# It runs in the hub's process with binder-actors' BINDER_* environment and loads the same BinderConfig;
# only what that cannot know arrives as BINDER_HUB_* variables (ports picked at start, the proxy's path).
import math
import os

from binder_actors.config import BinderConfig
from binder_actors.hub import LIST_PAGE_SIZE

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
config = BinderConfig()
hub_dir = config.data_dir / "hub"

c.JupyterHub.bind_url = f"http://127.0.0.1:{config.hub_port}/"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["BINDER_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['BINDER_HUB_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["BINDER_HUB_PROXY_COMMAND"]]
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")

c.JupyterHub.allow_named_servers = True  # used when BINDER_NAMED_SERVERS is set, and in authenticated mode
# The token arrives as BINDER_HUB_API_TOKEN (BinderConfig's hub_api_token) and is never written here.
# It is 32 random bytes (serve_app.embedded.hub_api_token), so the hub may check it with one hash
# instead of 16,384 rounds of SHA-512 per request: under load those rounds were an eighth of the
# hub's time (JupyterHub's trust_user_provided_tokens; a hub database made before keeps the old hash).
c.JupyterHub.trust_user_provided_tokens = True
user_roles = []
binder_service = {"name": "binder", "api_token": config.hub_api_token.get_secret_value()}
auth = config.auth
if auth.enabled:
    # Authenticated mode: people log in with the shared password (BINDER_AUTH_SHARED_PASSWORD, from the
    # environment, never written here), and binder-actors is an OAuth client of this hub, as BinderHub is.
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = auth.shared_password.get_secret_value() or None
    c.Authenticator.allowed_users = set(auth.allowed_users)
    c.Authenticator.allow_all = not auth.allowed_users
    c.JupyterHub.named_server_limit_per_user = auth.named_server_limit_per_user
    binder_service.update(
        oauth_client_id=auth.oauth_client_id,
        oauth_redirect_uri=config.launch_host + "oauth_callback",
        oauth_no_confirm=True,
    )
    # Every user may log in to binder-actors (the hub's authorize asks for access to the service), as BinderHub's.
    user_roles = [{"name": "user", "scopes": ["self", "access:services!service=binder"]}]
else:
    # Temporary users only: nobody logs in, so no password authenticator is reachable.
    c.JupyterHub.authenticator_class = "null"
    c.Authenticator.allow_all = True
c.JupyterHub.services = [binder_service]
c.JupyterHub.load_roles = [
    *user_roles,
    {
        "name": "binder",
        "scopes": [
            "admin:users",
            "admin:servers",
            "admin:groups",  # the group that marks the users binder-actors created
            "tokens",
            "list:users",
            "read:users",
            "read:users:activity",
            "read:servers",
            "access:servers",
        ],
        "services": ["binder"],
    },
]
# Servers outlive a hub restart (they are found again from the database); binder-actors stops
# them itself when it shuts down.
c.JupyterHub.cleanup_servers = False
# How often the hub reads every route's activity from the proxy (JupyterHub's default, 300 s):
# the servers report their own activity too, and at thousands of sessions a shorter interval
# is a sweep over all of them that the hub's one thread makes while launches wait.
c.JupyterHub.last_activity_interval = 300
# binder-actors pages through the users LIST_PAGE_SIZE at a time (the hub's default maximum is 200).
c.JupyterHub.api_page_max_limit = LIST_PAGE_SIZE
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "PYENV_ROOT"]
c.Spawner.start_timeout = math.ceil(config.launch_timeout)  # the hub counts whole seconds
c.Spawner.http_timeout = math.ceil(config.launch_timeout)


def local_sessions(spawner):
    """builder local: servers are processes of this host, in the environments on disk."""
    spawner.image_store = str(config.images_dir)
    spawner.sessions_dir = str(config.data_dir / "sessions")


if config.builder == "local":
    # Before this hub serves: the servers a killed hub started but never recorded end now.
    from binder_actors.spawners import end_unrecorded_sessions

    end_unrecorded_sessions(config.data_dir / "sessions", hub_dir / "jupyterhub.sqlite")


def docker_sessions(spawner):
    """builder docker: containers on a bridge network of their own. Their servers call the hub's API,
    so it listens on that network's gateway (BINDER_HUB_IP, an address of this host) instead of
    loopback; the proxy reaches each container at its address on the network."""
    c.JupyterHub.hub_ip = os.environ["BINDER_HUB_IP"]
    spawner.network_name = config.docker.network
    spawner.use_internal_ip = True
    spawner.env_keep = []  # the host's PATH is not the image's (c.Spawner.env_keep above)
    spawner.mem_limit = config.docker.mem_limit or None
    spawner.cpu_limit = config.docker.cpu_limit or None


def kube_sessions(spawner):
    """builder kubernetes: pods in BINDER_KUBE_NAMESPACE, from a hub outside the cluster that reaches
    pod IPs; kubespawner reads the cluster from KUBECONFIG. In a cluster, cluster/jupyterhub/values.yaml
    configures the same spawner for the zero-to-jupyterhub chart."""
    spawner.namespace = config.kubernetes.namespace
    spawner.env_keep = []  # the host's PATH is not the image's (c.Spawner.env_keep above)


SESSIONS = {
    "local": ("LocalBinderSpawner", local_sessions),
    "docker": ("DockerBinderSpawner", docker_sessions),
    "kubernetes": ("KubeBinderSpawner", kube_sessions),
}
spawner_name, configure = SESSIONS[config.builder]
c.JupyterHub.spawner_class = f"binder_actors.spawners.{spawner_name}"
spawner = c[spawner_name]
spawner.default_url = "/lab"
spawner.shutdown_no_activity_timeout = config.culling.session_idle_timeout
spawner.kernel_idle_timeout = config.culling.kernel_idle_timeout
configure(spawner)
