"""parse_mode handling: plain text and UTF-16 entities out, Telegram's parse errors on bad markup."""

from __future__ import annotations

import pytest

from sandbox.errors import ApiError
from sandbox.formatting import command_entities, parse_html, parse_markdown, parse_markdown_v2, render


def test_html_entities_use_utf16_offsets() -> None:
    text, entities = parse_html('😀 <b>订单</b> <a href="https://example.com/r?a=1&amp;b=2">链接</a> &lt;1&gt; &amp;')
    assert text == "😀 订单 链接 <1> &"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 2},  # the emoji counts as two UTF-16 units
        {"type": "text_link", "url": "https://example.com/r?a=1&b=2", "offset": 6, "length": 2},
    ]


def test_html_pre_with_language_and_spoiler() -> None:
    text, entities = parse_html('<pre><code class="language-python">x = 1</code></pre><tg-spoiler>s</tg-spoiler>')
    assert text == "x = 1s"
    assert entities == [{"type": "pre", "language": "python", "offset": 0, "length": 5},
                        {"type": "spoiler", "offset": 5, "length": 1}]


@pytest.mark.parametrize(("markup", "fragment"), [
    ("a <x> b", 'Unsupported start tag "x" at byte offset 2'),
    ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
    ("close</b>", "Unexpected end tag at byte offset 5"),
    ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ("1 < 2", "Unclosed start tag"),
])
def test_html_errors(markup: str, fragment: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse_html(markup)
    assert exc.value.error_code == 400
    assert exc.value.description.startswith("Bad Request: can't parse entities: ")
    assert fragment in exc.value.description


def test_markdown_v2() -> None:
    text, entities = parse_markdown_v2(r"*粗* _斜_ __下__ ~删~ ||藏|| `c\`` [t](https://x.y/\)) 1\.5")
    assert text == "粗 斜 下 删 藏 c` t 1.5"
    assert [e["type"] for e in entities] == ["bold", "italic", "underline", "strikethrough", "spoiler", "code",
                                             "text_link"]
    assert entities[-1]["url"] == "https://x.y/)"
    with pytest.raises(ApiError, match=r"Character '\.' is reserved"):
        parse_markdown_v2("1.5")
    with pytest.raises(ApiError, match="Can't find end of Bold entity at byte offset 0"):
        parse_markdown_v2("*open")
    quote, ents = parse_markdown_v2(">line one\n>line two\nafter")
    assert quote == "line one\nline two\nafter" and ents == [{"type": "blockquote", "offset": 0, "length": 17}]


def test_legacy_markdown_and_render() -> None:
    assert parse_markdown("*b* _i_ `c` [t](http://u)") == ("b i c t", [
        {"type": "bold", "offset": 0, "length": 1}, {"type": "italic", "offset": 2, "length": 1},
        {"type": "code", "offset": 4, "length": 1}, {"type": "text_link", "url": "http://u", "offset": 6,
                                                     "length": 1}])
    with pytest.raises(ApiError, match="Can't find end of the entity starting at byte offset 5"):
        parse_markdown("order_id")
    assert render("<b>x</b>", None, None) == ("<b>x</b>", [])
    explicit = [{"type": "bold", "offset": 0, "length": 1}]
    assert render("*x", "MarkdownV2", explicit) == ("*x", explicit)  # explicit entities win


def test_command_entities() -> None:
    assert command_entities("/start order_X") == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert command_entities("/start@refund_demo_bot") == [{"type": "bot_command", "offset": 0, "length": 22}]
    assert command_entities("hello /start") == [] and command_entities("/") == []
