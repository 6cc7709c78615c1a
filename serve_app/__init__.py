"""binder-actors' Ray Serve application: `serve run serve_app:app` starts it as is.

`app` is built when it is first asked for, not on import: importing a submodule (`serve_app.paths`)
loads neither Serve nor the deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serve_app.ingress import BinderIngress, build_app

__all__ = ["BinderIngress", "app", "build_app"]


def __getattr__(name: str) -> Any:
    """`app` (built once, then kept as a module attribute), `build_app` and `BinderIngress`, on first use."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from serve_app import ingress

    if name == "app":
        globals()["app"] = ingress.build_app()
        return globals()["app"]
    return getattr(ingress, name)
