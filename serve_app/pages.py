"""The ingress's HTML pages and static files, each read once per replica.

The launch and error pages are Jinja2 templates with autoescaping; the launch page's settings go
into a `<script>` element through `tojson`, which escapes `<`, `>`, `&` and `'` as JSON `\\u` escapes
(HTML entities would not be decoded inside a script element, so they would reach the page as text).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

TEMPLATES = Environment(
    loader=PackageLoader("serve_app", "templates"),
    autoescape=select_autoescape(default=True),
    keep_trailing_newline=True,
)
LAUNCH_PAGE = TEMPLATES.get_template("launch.html")
ERROR_PAGE = TEMPLATES.get_template("error.html")


def launch_page(spec: str, settings: dict[str, Any]) -> str:
    """The page a Binder link opens: `spec` shown as text, `settings` read by its script as JSON."""
    return LAUNCH_PAGE.render(spec=spec, settings=settings)


def error_page(message: str) -> str:
    return ERROR_PAGE.render(message=message)


@cache
def static_file(name: str) -> str:
    """A file served as it is (the landing page, the badges)."""
    return files("serve_app").joinpath("static", name).read_text()
