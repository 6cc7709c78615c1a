# The embedded JupyterHub: loopback only, temporary users started by binder-actors' SessionManager.
# binder-actors starts the hub with this file and passes the settings below in the environment
# (ports, data folder); the API token arrives as BINDER_HUB_API_TOKEN and is never written here.
import os

from binder_actors.spawners import LocalBinderSpawner

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

data_dir = os.environ["BINDER_DATA_DIR"]
hub_dir = os.path.join(data_dir, "hub")

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['BINDER_HUB_PORT']}/"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["BINDER_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['BINDER_HUB_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["BINDER_HUB_PROXY_COMMAND"]]
c.JupyterHub.db_url = f"sqlite:///{os.path.join(hub_dir, 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(hub_dir, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(hub_dir, "jupyterhub.pid")

# Temporary users only: nobody logs in, so no password authenticator is reachable.
c.JupyterHub.authenticator_class = "null"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = LocalBinderSpawner
c.JupyterHub.allow_named_servers = True  # used when BINDER_NAMED_SERVERS is set
c.LocalBinderSpawner.image_store = os.path.join(data_dir, "images")
c.LocalBinderSpawner.sessions_dir = os.path.join(data_dir, "sessions")
c.LocalBinderSpawner.default_url = "/lab"
c.LocalBinderSpawner.shutdown_no_activity_timeout = int(os.environ.get("BINDER_SESSION_IDLE_TIMEOUT", "600"))
c.LocalBinderSpawner.kernel_idle_timeout = int(os.environ.get("BINDER_KERNEL_IDLE_TIMEOUT", "600"))
c.Spawner.start_timeout = int(os.environ.get("BINDER_LAUNCH_TIMEOUT", "600"))
c.Spawner.http_timeout = int(os.environ.get("BINDER_LAUNCH_TIMEOUT", "600"))

c.JupyterHub.services = [
    {"name": "binder", "api_token": os.environ["BINDER_HUB_API_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {
        "name": "binder",
        "scopes": [
            "admin:users",
            "admin:servers",
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
# Activity is what the culler reads: report it often.
c.JupyterHub.last_activity_interval = 60
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "PYENV_ROOT"]

if os.environ.get("BINDER_HUB_SPAWNER") == "docker":
    # BINDER_BUILDER=docker: sessions run in containers on a bridge network of their own. Their
    # servers call the hub's API, so it listens on that network's gateway (an address of this host)
    # instead of loopback; the proxy reaches each container at its address on the network.
    c.JupyterHub.spawner_class = "binder_actors.spawners.DockerBinderSpawner"
    c.JupyterHub.hub_ip = os.environ["BINDER_HUB_IP"]
    c.DockerBinderSpawner.network_name = os.environ["BINDER_DOCKER_NETWORK"]
    c.DockerBinderSpawner.use_internal_ip = True
    c.DockerBinderSpawner.env_keep = []  # the host's PATH is not the image's (c.Spawner.env_keep above)
    c.DockerBinderSpawner.default_url = "/lab"
    c.DockerBinderSpawner.mem_limit = os.environ.get("BINDER_DOCKER_MEM_LIMIT") or None
    c.DockerBinderSpawner.cpu_limit = float(os.environ.get("BINDER_DOCKER_CPU_LIMIT") or 0) or None
    c.DockerBinderSpawner.shutdown_no_activity_timeout = int(os.environ.get("BINDER_SESSION_IDLE_TIMEOUT", "600"))
    c.DockerBinderSpawner.kernel_idle_timeout = int(os.environ.get("BINDER_KERNEL_IDLE_TIMEOUT", "600"))

if os.environ.get("BINDER_HUB_SPAWNER") == "kube":
    # Sessions run as pods (KubeBinderSpawner) in BINDER_KUBE_NAMESPACE, from a hub outside the
    # cluster that reaches pod IPs; kubespawner reads the cluster from KUBECONFIG. In a cluster,
    # cluster/jupyterhub/values.yaml configures the same spawner for the zero-to-jupyterhub chart.
    c.JupyterHub.spawner_class = "binder_actors.spawners.KubeBinderSpawner"
    c.KubeBinderSpawner.namespace = os.environ.get("BINDER_KUBE_NAMESPACE", "binder")
    c.KubeBinderSpawner.env_keep = []  # the host's PATH is not the image's (c.Spawner.env_keep above)
    c.KubeBinderSpawner.default_url = "/lab"
    c.KubeBinderSpawner.shutdown_no_activity_timeout = int(os.environ.get("BINDER_SESSION_IDLE_TIMEOUT", "600"))
    c.KubeBinderSpawner.kernel_idle_timeout = int(os.environ.get("BINDER_KERNEL_IDLE_TIMEOUT", "600"))
