"""Telegram's parse_mode handling: markup in, plain text + entities out, or Telegram's parse error.

Strict on purpose: a bot that forgets to escape user text ("<", ".", "_") must fail here as it
would on the real server, not only in production.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, bad_request


def utf16_len(text: str) -> int:
    # Telegram measures entity offsets and lengths in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _cant_parse(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


@dataclass
class _Builder:
    parts: list[str] = field(default_factory=list)
    length16: int = 0
    entities: list[dict[str, Any]] = field(default_factory=list)

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.length16 += utf16_len(chunk)

    def close(self, entity: dict[str, Any], start16: int) -> None:
        length = self.length16 - start16
        if length > 0:
            self.entities.append({**entity, "offset": start16, "length": length})

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        ents = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), ents


# ---- HTML ------------------------------------------------------------------------------------

_HTML_SIMPLE = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "code": "code", "pre": "pre", "blockquote": "blockquote",
}
_HTML_TAGS = set(_HTML_SIMPLE) | {"a", "span", "tg-emoji"}
_ATTR = re.compile(r"""\s*([A-Za-z_][\w-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_HTML_ENTITY = re.compile(r"&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|lt|gt|amp|quot);")


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, dict[str, Any] | None, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "&":
            m = _HTML_ENTITY.match(text, i)
            if m:
                out.add(html.unescape(m.group(0)))
                i = m.end()
            else:
                out.add("&")  # Telegram keeps a lone ampersand literally
                i += 1
            continue
        if c != "<":
            j = i
            while j < n and text[j] not in "<&":
                j += 1
            out.add(text[i:j])
            i = j
            continue
        end = text.find(">", i)
        if text.startswith("</", i):
            if end < 0:
                raise _cant_parse(f"Unclosed end tag at byte offset {_byte_offset(text, i)}")
            name = text[i + 2 : end].strip().lower()
            if not stack:
                raise _cant_parse(f"Unexpected end tag at byte offset {_byte_offset(text, i)}")
            open_name, opened, start16 = stack.pop()
            if name and name != open_name:
                raise _cant_parse(
                    f'Unmatched end tag at byte offset {_byte_offset(text, i)}, expected "</{open_name}>", '
                    f'found "</{name}>"'
                )
            if opened is not None:
                out.close(opened, start16)
            i = end + 1
            continue
        if end < 0:
            raise _cant_parse(f"Unclosed start tag at byte offset {_byte_offset(text, i)}")
        m = re.match(r"[A-Za-z][\w-]*", text[i + 1 : end])
        name = m.group(0).lower() if m else ""
        if name not in _HTML_TAGS:
            shown = name or text[i + 1 : end].split(" ")[0]
            raise _cant_parse(f'Unsupported start tag "{shown}" at byte offset {_byte_offset(text, i)}')
        attrs = {
            a.group(1).lower(): html.unescape((a.group(2) or "").strip("\"'"))
            for a in _ATTR.finditer(text[i + 1 + len(name) : end])
        }
        entity: dict[str, Any] | None  # None: a tag that adds no entity of its own
        if name == "a":
            href = attrs.get("href", "")
            m_user = re.fullmatch(r"tg://user\?id=(\d+)", href)
            if m_user:
                entity = {"type": "text_mention", "user": {"id": int(m_user.group(1)), "is_bot": False,
                                                           "first_name": ""}}
            else:
                entity = {"type": "text_link", "url": href} if href else None
        elif name == "span":
            if attrs.get("class") != "tg-spoiler":
                raise _cant_parse('Tag "span" must have class "tg-spoiler"')
            entity = {"type": "spoiler"}
        elif name == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attrs.get("emoji-id", "")}
        elif name == "blockquote" and "expandable" in attrs:
            entity = {"type": "expandable_blockquote"}
        elif name == "code" and stack and stack[-1][0] == "pre" and attrs.get("class", "").startswith("language-"):
            # <pre><code class="language-x"> is one pre entity with a language, not two entities.
            pre = stack[-1][1]
            if pre is not None:
                pre["language"] = attrs["class"][len("language-"):]
            entity = None
        else:
            entity = {"type": _HTML_SIMPLE[name]}
        stack.append((name, entity, out.length16))
        i = end + 1
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


# ---- MarkdownV2 ------------------------------------------------------------------------------

_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_TOGGLES = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
_ENTITY_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
                 "spoiler": "Spoiler", "text_link": "TextUrl", "code": "Code", "pre": "Pre"}


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (entity type, start16, source index)
    i, n = 0, len(text)
    quote_start: int | None = None
    while i < n:
        c = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        if c == "\\" and i + 1 < n and ord(text[i + 1]) <= 126:
            out.add(text[i + 1])
            i += 2
            continue
        if c == ">" and at_line_start:
            if quote_start is None:
                quote_start = out.length16
            i += 1
            continue
        if c == "\n" and quote_start is not None and not text.startswith(">", i + 1):
            out.close({"type": "blockquote"}, quote_start)
            quote_start = None
        if c == "`":
            fence = text.startswith("```", i)
            delim = "```" if fence else "`"
            j, body = i + len(delim), []
            while j < n and not text.startswith(delim, j):
                if text[j] == "\\" and j + 1 < n and text[j + 1] in "`\\":
                    body.append(text[j + 1])
                    j += 2
                    continue
                body.append(text[j])
                j += 1
            if j >= n:
                kind = "Pre" if fence else "Code"
                raise _cant_parse(f"Can't find end of {kind} entity at byte offset {_byte_offset(text, i)}")
            content = "".join(body)
            code: dict[str, Any] = {"type": "pre" if fence else "code"}
            if fence:
                first, nl, rest = content.partition("\n")
                if nl and first and " " not in first:
                    code["language"], content = first, rest
                elif nl and not first:
                    content = rest
            start = out.length16
            out.add(content)
            out.close(code, start)
            i = j + len(delim)
            continue
        token = text[i : i + 2] if text[i : i + 2] in ("__", "||") else c
        if token in _MDV2_TOGGLES:
            kind = _MDV2_TOGGLES[token]
            if stack and stack[-1][0] == kind:
                _, start16, _src = stack.pop()
                out.close({"type": kind}, start16)
            elif any(s[0] == kind for s in stack):
                top = stack[-1]
                raise _cant_parse(
                    f"Can't find end of {_ENTITY_NAMES[top[0]]} entity at byte offset {_byte_offset(text, top[2])}"
                )
            else:
                stack.append((kind, out.length16, i))
            i += len(token)
            continue
        if c == "[":
            stack.append(("text_link", out.length16, i))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "text_link":
            if not text.startswith("(", i + 1):
                raise _cant_parse(f"Can't find end of TextUrl entity at byte offset {_byte_offset(text, stack[-1][2])}")
            j, url = i + 2, []
            while j < n and text[j] != ")":
                if text[j] == "\\" and j + 1 < n:
                    url.append(text[j + 1])
                    j += 2
                    continue
                url.append(text[j])
                j += 1
            if j >= n:
                raise _cant_parse(f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}")
            _, start16, _src = stack.pop()
            out.close({"type": "text_link", "url": "".join(url)}, start16)
            i = j + 1
            continue
        if c in _MDV2_RESERVED:
            raise _cant_parse(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.add(c)
        i += 1
    if quote_start is not None:
        out.close({"type": "blockquote"}, quote_start)
    if stack:
        kind, _, src = stack[-1]
        raise _cant_parse(f"Can't find end of {_ENTITY_NAMES[kind]} entity at byte offset {_byte_offset(text, src)}")
    return out.result()


# ---- legacy Markdown -------------------------------------------------------------------------

_MD_SIMPLE = {"*": "bold", "_": "italic"}


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if c in "*_`[":
            delim = "```" if text.startswith("```", i) else ("]" if c == "[" else c)
            opener = len(delim) if delim != "]" else 1
            j = text.find(delim, i + opener)
            if j < 0:
                raise _cant_parse(f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}")
            inner = text[i + opener : j]
            start = out.length16
            entity: dict[str, Any]
            if c == "[":
                if not text.startswith("(", j + 1) or text.find(")", j + 2) < 0:
                    raise _cant_parse(f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}")
                close = text.find(")", j + 2)
                entity = {"type": "text_link", "url": text[j + 2 : close]}
                end = close + 1
            else:
                entity = {"type": {"```": "pre", "`": "code"}.get(delim) or _MD_SIMPLE[c]}
                end = j + len(delim)
            out.add(inner)
            out.close(entity, start)
            i = end
            continue
        out.add(c)
        i += 1
    return out.result()


def render(text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities as Telegram would store them; explicit entities win over parse_mode."""
    if entities:
        return text, list(entities)
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode:
        raise bad_request(f"unsupported parse_mode {parse_mode}")
    return text, []


def command_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command entity Telegram attaches to a leading /command in a user's message."""
    m = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?", text)
    if not m:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(m.group(0))}]
