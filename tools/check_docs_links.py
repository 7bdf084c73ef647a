"""Check the internal links of the built documentation, offline.

Every ``href`` and ``src`` of every HTML page (the theme's templates under
``_static/`` are not pages) that points inside the site
must name a file that exists, and an ``#anchor`` must be an ``id`` of the page
it points to. Links to other sites are not followed (the build machines have
no network). Exits 1 and lists the broken links if there are any::

    python tools/check_docs_links.py docs/_build/html
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])


def _parse(path, cache):
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(root):
    """``(page, link)`` for each internal link of the site that leads nowhere."""
    root = Path(root).resolve()
    cache, broken = {}, []
    pages = [p for p in sorted(root.rglob("*.html")) if "_static" not in p.parts]
    for page_path in pages:
        for link in _parse(page_path, cache).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = (
                (page_path.parent / unquote(parts.path)).resolve()
                if parts.path
                else page_path
            )
            if target.is_dir():
                target = target / "index.html"
            if not target.exists() or (
                parts.fragment
                and target.suffix == ".html"
                and parts.fragment not in _parse(target, cache).ids
            ):
                broken.append((page_path.relative_to(root), link))
    return broken


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "docs/_build/html")
    broken = broken_links(root)
    pages = len([p for p in root.rglob("*.html") if "_static" not in p.parts])
    for page, link in broken:
        print(f"{page}: broken link {link}")
    print(f"{pages} pages, {len(broken)} broken internal links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
