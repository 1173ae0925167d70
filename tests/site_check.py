"""The docs site as a reader sees it: no reStructuredText left raw in its HTML (roles such
as :class:`x`, ``double backticks``, ==== table rules). Run by .ci/run after
`mkdocs build`: python tests/site_check.py site"""

import re
import sys
from pathlib import Path

RAW = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`|``|^={4,}(?:\s+={4,})+\s*$", re.M)
_TAGS = re.compile(r"<script\b.*?</script>|<style\b.*?</style>|<[^>]+>", re.S)


def problems(html: str) -> list[str]:
    """Each raw reStructuredText construct in the text of a page, with a little context."""
    text = _TAGS.sub("", html).replace("&#96;", "`")
    return [text[max(0, m.start() - 40) : m.end() + 40].replace("\n", " ") for m in RAW.finditer(text)]


def main(site: str) -> int:
    pages = sorted(Path(site).rglob("*.html"))
    if not pages:
        print(f"site_check: no HTML pages under {site}", file=sys.stderr)
        return 1
    found = [(page, p) for page in pages for p in problems(page.read_text(encoding="utf-8"))]
    for page, p in found[:20]:
        print(f"{page}: raw reStructuredText: ...{p}...", file=sys.stderr)
    print(f"site_check: {len(pages)} pages, {len(found)} raw reStructuredText constructs")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "site"))
