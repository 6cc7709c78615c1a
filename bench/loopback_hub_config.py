# TEST TOOL for `python -m bench scale`, never the product's default: the embedded hub's own config
# (binder_actors/hub_config/jupyterhub_config.py, loaded as is), with every server answered by the
# one loopback process of bench/loopback_server.py (BINDER_LOOPBACK_URL) instead of a real server.
from binder_actors.config import EMBEDDED_HUB_CONFIG

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
load_subconfig(str(EMBEDDED_HUB_CONFIG))  # noqa: F821
c.JupyterHub.spawner_class = "bench.loopback_spawner.LoopbackSpawner"
c.LoopbackSpawner.default_url = "/lab"
