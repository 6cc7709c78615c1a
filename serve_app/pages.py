"""The ingress's HTML pages, each rendered from a Jinja2 template, and the files of `static/`, read once.

Every page extends `page.html`, which carries the operator's look (PageSettings): the banner, extra `<head>`
HTML and footer scripts. An operator's `template_path` is searched before the built-in templates, so a file
there named as one of them (page.html, index.html, launch.html, error.html, about.html) replaces it.

Templates autoescape. The banner and about message are sanitised HTML (nh3: links and formatting stay,
scripts, event handlers and `javascript:` URLs go); extra_header and extra_footer_scripts are the operator's
own code and go in as they are. Page settings reach a script through `tojson`, which escapes `<`, `>`, `&`
and `'` as JSON `\\u` escapes (HTML entities would not be decoded inside a script element).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import nh3
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from markupsafe import Markup

from binder_actors.config import ProviderSettings
from binder_actors.config_features import PageSettings
from serve_app.landing import landing_providers
from serve_app.versions import service_version


def sanitised(html: str) -> Markup:
    """Operator HTML shown to every visitor, made harmless: no script, no event handler, no javascript: URL."""
    return Markup(nh3.clean(html))


def template_environment(template_path: str = "") -> Environment:
    """The built-in templates, behind the operator's folder when there is one."""
    loaders = [FileSystemLoader(template_path)] if template_path else []
    return Environment(
        loader=ChoiceLoader([*loaders, PackageLoader("serve_app", "templates")]),
        autoescape=select_autoescape(default=True),
        keep_trailing_newline=True,
        trim_blocks=True,  # a block tag's own line break goes with it
    )


class Pages:
    """One deployment's pages: its templates, and what every page carries, prepared once per replica."""

    def __init__(
        self, settings: PageSettings | None = None, providers: ProviderSettings | None = None, base_path: str = "/"
    ) -> None:
        self.settings = settings or PageSettings()
        self.providers = providers or ProviderSettings()
        self.environment = template_environment(self.settings.template_path)
        self.common: dict[str, Any] = {
            "base_url": base_path,
            "banner": sanitised(self.settings.banner_message) if self.settings.banner_message else "",
            "extra_header": Markup(self.settings.extra_header),
            "footer_scripts": [Markup(code) for _, code in sorted(self.settings.extra_footer_scripts.items())],
        }

    def render(self, name: str, **values: Any) -> str:
        return self.environment.get_template(name).render(**self.common, **values)

    def landing(self) -> str:
        """The landing page: the enabled providers, named after the configured hosts, and the badge base."""
        settings = {
            "providers": landing_providers(self.settings, self.providers),
            "badgeBaseUrl": self.settings.badge_base_url,
        }
        return self.render("index.html", settings=settings)

    def launch(self, spec: str, settings: dict[str, Any]) -> str:
        """The page a Binder link opens: `spec` shown as text, `settings` read by its script as JSON."""
        return self.render("launch.html", spec=spec, settings=settings)

    def error(self, message: str) -> str:
        return self.render("error.html", message=message)

    def about(self) -> str:
        about = self.settings.about_message
        return self.render("about.html", about_message=sanitised(about) if about else "", version=service_version())


@cache
def static_file(name: str) -> str:
    """A file served as it is (the badges)."""
    return files("serve_app").joinpath("static", name).read_text()
