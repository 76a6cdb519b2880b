"""Reports rendered from the jinja2 templates in `emergent_alignment/templates/` (HTML autoescaped)."""

from __future__ import annotations

import functools
import json


def _percent(value, digits: int = 1) -> str:
    """0.123 -> '12.3%'; '-' for None or NaN."""
    if value is None or value != value:
        return "-"
    return f"{value * 100:.{digits}f}%"


@functools.cache
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emergent_alignment", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        percent=_percent,
        thousands=lambda v: f"{v:,}",
        tojson_compact=lambda v: json.dumps(v),
    )
    return env


def render(name: str, **context) -> str:
    """Render template `name` (e.g. "organism_report.html.j2") with `context`."""
    return environment().get_template(name).render(**context)
