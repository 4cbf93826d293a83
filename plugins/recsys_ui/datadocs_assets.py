"""Great Expectations Data Docs without the internet: CDN asset URLs rewritten to local copies.

Data Docs pages load jQuery, Bootstrap, bootstrap-table and Vega from CDNs, so on an api-server
without internet access they render empty (``$ is not defined``). The files are vendored in
``static/datadocs/`` (versions and licences in its README); :func:`rewrite` points a page's tags
at them and drops the remaining external scripts and stylesheets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

ASSETS = Path(__file__).with_name("static") / "datadocs"

#: CDN URL (as GX 1.x's templates write it) -> vendored file.
CDN_FILES: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/vega@5": "vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker.min.css",
}

# A <script src=...></script> or a <link ... href=...> tag with an absolute http(s) URL.
_TAG = re.compile(
    r"""<script\b[^>]*?\bsrc=["'](?P<src>https?://[^"']+)["'][^>]*>\s*</script>"""
    r"""|<link\b[^>]*?\bhref=["'](?P<href>https?://[^"']+)["'][^>]*?/?>""",
    re.IGNORECASE,
)
_INTEGRITY = re.compile(r"""\s(?:integrity|crossorigin)=["'][^"']*["']""", re.IGNORECASE)


def rewrite(html: str, asset_url: Callable[[str], str]) -> str:
    """``html`` with each known CDN asset loaded from ``asset_url(file)`` and other external
    scripts and stylesheets removed (the page must not wait on, or leak to, the internet)."""

    def replace(match: re.Match[str]) -> str:
        url = match.group("src") or match.group("href")
        name = CDN_FILES.get(url)
        if name is None:
            return ""
        # The subresource-integrity hashes name the CDN's bytes; the local copy is served same-origin.
        return _INTEGRITY.sub("", match.group(0).replace(url, asset_url(name)))

    return _TAG.sub(replace, html)


def asset(name: str) -> Path | None:
    """The vendored file ``name``, or None when it is not one of them (nothing else is served)."""
    return ASSETS / name if name in set(CDN_FILES.values()) else None
