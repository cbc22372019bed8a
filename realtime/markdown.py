"""Message content as HTML: CommonMark (plus tables and strikethrough), highlighted, then sanitized.

``render(text)`` is the one renderer every page uses (``realtime.fragments``). Three
layers, each enough on its own for the rules it owns:

1. markdown-it-py with ``html`` off: raw HTML in a message is escaped as text, never parsed.
   Link and image URLs must be http(s), mailto or relative (no ``javascript:``, ``data:``,
   ``vbscript:``); others stay as literal text.
2. Pygments colours fenced code whose language it knows (``language`` after the fence);
   other code is escaped as it is. Spans carry Pygments' short class names (``app.css``).
3. nh3 (the Rust ammonia sanitizer) keeps only the tags, attributes, classes and URL
   schemes listed here, and sets ``rel="nofollow noopener"`` and ``target="_blank"`` on links.
   No ``style`` attribute passes (the pages' CSP forbids inline styles): table alignment
   is an ``align-*`` class.

Images are links (``image: <alt>``) unless ``SCS_MARKDOWN_IMAGES`` is true, so a message
cannot make every viewer's browser fetch a URL.
"""

import functools
import html
import re

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from realtime import conf

SCHEMES = frozenset({"http", "https", "mailto"})
SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
LANGUAGE_RE = re.compile(r"^[A-Za-z0-9_+#.-]{1,40}$")
LINK_REL = "nofollow noopener"
ALIGNMENTS = frozenset({"align-left", "align-center", "align-right"})
TOKEN_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre", "span",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
})


def allowed_url(url):
    """True for http(s), mailto and scheme-less (relative) URLs; control characters never pass."""
    url = url.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return False
    scheme = SCHEME_RE.match(url)
    return scheme is None or scheme.group(1).lower() in SCHEMES


FORMATTER = HtmlFormatter(nowrap=True)


@functools.lru_cache(maxsize=128)
def lexer_for(language):
    """The Pygments lexer named ``language``, or None (unknown or malformed names are not highlighted)."""
    if not LANGUAGE_RE.fullmatch(language):
        return None
    try:
        return get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def highlight_code(code, language, _attrs):
    """Highlighted ``<pre>`` for a fenced block, or "" to let markdown-it escape it as plain code."""
    lexer = lexer_for(language) if language else None
    if lexer is None:
        return ""
    return f'<pre class="highlight"><code>{highlight(code, lexer, FORMATTER)}</code></pre>\n'


def image_as_link(_renderer, tokens, index, options, env):
    """An image written in a message, shown as a link to it (``SCS_MARKDOWN_IMAGES`` off)."""
    token = tokens[index]
    alt = "".join(child.content for child in token.children or [])
    return f'<a href="{html.escape(token.attrGet("src") or "")}">image: {html.escape(alt or "untitled")}</a>'


def aligned_cell(renderer, tokens, index, options, env):
    """A table cell aligned by a class rather than ``style`` (the pages' CSP allows no inline style)."""
    token = tokens[index]
    style = token.attrs.pop("style", None)
    if isinstance(style, str) and style.startswith("text-align:"):
        token.attrSet("class", "align-" + style.split(":", 1)[1])
    return renderer.renderToken(tokens, index, options, env)


@functools.lru_cache(maxsize=2)
def _renderer(images):
    """``(markdown-it parser, nh3 cleaner)`` for one value of ``SCS_MARKDOWN_IMAGES``."""
    parser = MarkdownIt("commonmark", {"html": False, "highlight": highlight_code}).enable(["table", "strikethrough"])
    parser.validateLink = allowed_url
    parser.add_render_rule("th_open", aligned_cell)
    parser.add_render_rule("td_open", aligned_cell)
    tags, attributes = set(TAGS), {"a": {"href", "title"}, "ol": {"start"}}
    if images:
        tags.add("img")
        attributes["img"] = {"src", "alt", "title"}
    else:
        parser.add_render_rule("image", image_as_link)
    cleaner = nh3.Cleaner(
        tags=tags,
        attributes=attributes,
        allowed_classes={"pre": {"highlight"}, "span": set(TOKEN_CLASSES), "th": set(ALIGNMENTS),
                         "td": set(ALIGNMENTS)},
        url_schemes=set(SCHEMES),
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"},
                                  **({"img": {"loading": "lazy", "referrerpolicy": "no-referrer"}} if images else {})},
        strip_comments=True,
    )
    return parser, cleaner


def render(text):
    """``text`` (Markdown) as sanitized HTML, safe to put in any page."""
    parser, cleaner = _renderer(bool(conf.get("SCS_MARKDOWN_IMAGES")))
    return cleaner.clean(parser.render(text)).strip()
