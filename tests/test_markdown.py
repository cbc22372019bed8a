"""realtime.markdown: CommonMark rendered, highlighted and sanitized; realtime.fragments builds on it."""

import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from django.utils import timezone

from realtime.envelope import MEMORY_TARGET, memory_event, target, validate_memory_event
from realtime.fragments import message_html, page_event
from realtime.markdown import LINK_REL, TAGS, render
from tests.xss_payloads import PAYLOADS


def test_bold_italic_lists_and_paragraphs():
    html = render("**bold** and *it*\n\n- one\n- two\n\n1. first")
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html and "<ol>\n<li>first</li>\n</ol>" in html


def test_fenced_code_is_highlighted_when_the_language_is_known():
    html = render("```python\ndef f():\n    return 1\n```")
    assert html.startswith('<pre class="highlight"><code>')
    assert '<span class="k">def</span>' in html and '<span class="nf">f</span>' in html
    plain = render("```no-such-language\n<b>x</b>\n```")
    assert plain == '<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>'
    assert render("    indented <i>code</i>") == "<pre><code>indented &lt;i&gt;code&lt;/i&gt;\n</code></pre>"


def test_tables_align_by_class_not_style():
    html = render("| a | b |\n|:--|--:|\n| 1 | 2 |")
    assert '<th class="align-left">a</th>' in html and '<td class="align-right">2</td>' in html
    assert "style=" not in html


def test_links_get_rel_and_target():
    html = render("[site](https://example.com/a?b=1) and <https://example.org>")
    assert f'<a href="https://example.com/a?b=1" target="_blank" rel="{LINK_REL}">site</a>' in html
    assert f'<a href="https://example.org" target="_blank" rel="{LINK_REL}">https://example.org</a>' in html
    assert LINK_REL == "nofollow noopener"
    assert 'href="mailto:a@example.com"' in render("[mail](mailto:a@example.com)")


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "&#x6A;avascript:alert(1)", "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "data:image/png;base64,AAAA", "file:///etc/passwd",
])
def test_dangerous_link_urls_stay_text(url):
    for source in (f"[click]({url})", f"[click][r]\n\n[r]: {url}", f"<{url}>"):
        html = render(source)
        assert "<a " not in html, (source, html)
        assert not re.search(r'href="\s*(javascript|vbscript|data|file):', html, re.IGNORECASE)


def test_raw_html_is_escaped_never_parsed():
    html = render('<script>alert(1)</script>\n\n<b onclick="x()">hi</b> <img src=x onerror=alert(1)>')
    assert "<script" not in html and "<b " not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_images_are_links_by_default_and_images_by_setting(settings):
    source = '![a chart](https://example.com/chart.png "title")'
    html = render(source)
    assert "<img" not in html
    assert f'<a href="https://example.com/chart.png" target="_blank" rel="{LINK_REL}">image: a chart</a>' in html
    settings.SCS_MARKDOWN_IMAGES = True
    html = render(source)
    assert '<img src="https://example.com/chart.png" alt="a chart" title="title"' in html
    assert 'loading="lazy"' in html and 'referrerpolicy="no-referrer"' in html
    assert "<img" not in render("![x](javascript:alert(1)) ![y](data:image/svg+xml;base64,PHN2Zz4=)")


class Elements(HTMLParser):
    """Every element of an HTML fragment, as a browser's parser would see its tags: (tag, {attribute: value})."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.found = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("images", [False, True])
def test_no_payload_leaves_an_active_element_attribute_or_url(settings, images):
    settings.SCS_MARKDOWN_IMAGES = images
    assert len(PAYLOADS) >= 50
    allowed = TAGS | ({"img"} if images else set())
    for payload in PAYLOADS:
        for tag, attributes in Elements(render(payload)).found:
            assert tag in allowed, (payload, tag)
            assert not [name for name in attributes if name.startswith("on") or name == "style"], (payload, tag)
            for name in ("href", "src"):
                url = (attributes.get(name) or "").strip().lower()
                assert not url.startswith(("javascript:", "vbscript:", "data:")), (payload, url)


def event(**data):
    fields = {"id": 7, "sender": "ada", "sender_type": "claude", "content": "**hi**", "visibility": "agent_only",
              "metadata": {"step": 1}, "parent_message_id": 3, "timestamp": "2026-05-01T14:00:00.000000Z"}
    return {"type": "new_message", "session_id": "session_0123456789abcdef", "seq": 5, "data": {**fields, **data}}


def test_a_message_fragment_carries_what_the_page_shows_and_the_text_as_written():
    html = message_html(event())
    assert html.startswith('<li class="message" id="m5" data-seq="5" data-id="7" data-parent-id="3">')
    assert '<span class="badge badge-agent_only" title="Agents of the sender&#x27;s type can read this">' in html
    assert '<span class="reply-to">reply to an earlier message</span>' in html
    assert '<div class="content markdown"><p><strong>hi</strong></p></div>' in html
    assert '<pre class="content plain">**hi**</pre>' in html
    assert '<time datetime="2026-05-01T14:00:00.000000Z" data-local="datetime">2026-05-01 14:00:00 UTC</time>' in html
    assert "&quot;step&quot;: 1" in html
    top = message_html(event(parent_message_id=None, metadata={}))
    assert "data-parent-id" not in top and "reply-to" not in top and "metadata" not in top
    assert page_event(event()) == {**event(), "html": html}


def test_memory_events_route_apart_from_messages_and_validate():
    entry = SimpleNamespace(pk=9, agent_id="ada", key="plan", session_id=None, value={"a": [1]}, metadata={},
                            updated_at=timezone.now(), expires_at=None)
    memory = memory_event("set", entry)
    assert target(memory) == MEMORY_TARGET and target(event()) == "session_0123456789abcdef"
    assert validate_memory_event(memory) is None
    assert validate_memory_event({**memory, "action": "drop"}) == "memory event action must be one of set, delete"
    assert "exactly" in validate_memory_event({**memory, "seq": 1})
    assert "session_id" in validate_memory_event({**memory, "entry": {**memory["entry"], "session_id": "x"}})
    assert validate_memory_event(event()) is not None
