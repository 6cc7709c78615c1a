"""binder-actors' Ray Serve application: `serve run serve_app:app` starts it as is."""

from serve_app.ingress import BinderIngress, build_app

app = build_app()

__all__ = ["BinderIngress", "app", "build_app"]
