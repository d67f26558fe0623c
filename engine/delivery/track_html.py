"""Opens and clicks in an email's HTML: its links rewritten to signed redirects and a 1x1
pixel appended (engine/delivery/tracking.py signs them). The text part is left as it is: a
person reading plain text follows the original URL, and nothing is recorded for it.

Not rewritten: the unsubscribe link (a tracked unsubscribe is a redirect mail clients and
laws frown upon, and it must work when the API's tracking routes do not), non-http(s) links
(mailto:, tel:, #anchors) and links with `data-track="off"`."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape, unescape

from engine.delivery.tracking import is_trackable

# An <a ...> start tag's href, quoted: the templates are ours and autoescaped, so every
# attribute is quoted; an unquoted href is left alone rather than guessed at.
_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_OPT_OUT = re.compile(r"""\bdata-track\s*=\s*["']off["']""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def rewrite_links(html: str, tracked: Callable[[str], str], keep: str) -> str:
    """`html` with each trackable link's href replaced by `tracked(original URL)`, but those
    that start with `keep` (the unsubscribe links)."""

    def anchor(match: re.Match[str]) -> str:
        tag = match.group(0)
        if _OPT_OUT.search(tag):
            return tag
        return _HREF.sub(href, tag, count=1)

    def href(match: re.Match[str]) -> str:
        url = unescape(match.group(3)).strip()
        if not is_trackable(url) or url.startswith(keep):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{escape(tracked(url))}{match.group(2)}"

    return _ANCHOR.sub(anchor, html)


def add_pixel(html: str, pixel_url: str) -> str:
    """`html` with an invisible 1x1 image before `</body>` (or at the end)."""
    image = (
        f'<img src="{escape(pixel_url)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    found = list(_BODY_END.finditer(html))
    if not found:
        return html + image
    at = found[-1].start()
    return html[:at] + image + html[at:]
