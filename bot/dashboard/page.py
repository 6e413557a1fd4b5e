"""The dashboard's HTML: the sign-in page and the chart page, in the visitor's language."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from string import Template

from aiohttp import web

from dialogs.domain import PaymentChannel
from dialogs.texts import LOCALES, Texts, catalog

TEMPLATES = Path(__file__).with_name("templates")
DAY_CHOICES = (7, 14, 30, 90, 180, 365)


def pick_locale(request: web.Request, default: str = "zh_CN") -> str:
    """?lang= when it names a catalog, else the first Accept-Language entry we have, else `default`."""
    asked = request.query.get("lang", "")
    if asked in LOCALES:
        return asked
    weighted: list[tuple[float, int, str]] = []
    for n, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((-quality, n, tag.lower()))
    for _, _, tag in sorted(weighted):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return default


def _other(locale: str) -> str:
    return "en" if locale == "zh_CN" else "zh_CN"


def _fill(name: str, **values: str) -> str:
    return Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(values)


def login_page(locale: str, *, password: bool, bot_username: str, auth_url: str, error: str = "") -> str:
    t = Texts(locale)
    form = ""
    if password:
        form = (f'<form method="post" action="/dashboard/login?lang={locale}">'
                f'<label for="password">{escape(t("dash.password"))}</label>'
                '<input type="password" id="password" name="password" autocomplete="current-password" required>'
                f'<button type="submit" id="sign-in">{escape(t("dash.sign_in"))}</button></form>')
    widget = ""
    if bot_username:
        widget = (f'<p>{escape(t("dash.or_telegram"))}</p>'
                  '<script async src="https://telegram.org/js/telegram-widget.js?22" '
                  f'data-telegram-login="{escape(bot_username)}" data-size="large" '
                  f'data-auth-url="{escape(auth_url)}" data-lang="{"zh-hans" if locale == "zh_CN" else "en"}">'
                  '</script>')
    return _fill("login.html", lang=locale, other_lang=_other(locale), title=escape(t("dash.title")),
                 switch_lang=escape(t("dash.switch_lang")), login_title=escape(t("dash.login_title")),
                 login_hint=escape(t("dash.login_hint")),
                 error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
                 password_form=form, widget=widget)


def signed_in_page(locale: str) -> str:
    t = Texts(locale)
    return ('<!doctype html><html><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0;url=/dashboard?lang={locale}">'
            f'<title>{escape(t("dash.title"))}</title></head><body><p>{escape(t("dash.signed_in"))} '
            f'<a href="/dashboard?lang={locale}">{escape(t("dash.continue"))}</a></p></body></html>')


def labels(locale: str) -> dict[str, object]:
    """What dashboard.js needs to name things, in the page's language."""
    t = Texts(locale)
    statuses = {k.removeprefix("status."): v for k, v in catalog(locale).items() if k.startswith("status.")}
    return {
        "status": statuses,
        # The customers' word unless the desk has its own (they read "original payment account" for epay)
        "channel": {c.value: t(f"dash.channel.{c.value}", t(f"channel.{c.value}")) for c in PaymentChannel},
        "missed": {d: t(f"dash.missed.{d}") for d in ("review", "credit")},
        "agents": {k: t(f"dash.agents.{k}") for k in ("taken", "decided", "open")},
        "csat_average": t("dash.csat.average"), "csat_count": t("dash.csat.count"), "cases": t("dash.cases"),
        "loading": t("dash.loading"),
        "load_failed": t("dash.load_failed"), "signed_out": t("dash.signed_out"),
    }


def dashboard_page(locale: str, *, signed_in: str, days: int, timezone: str) -> str:
    t = Texts(locale)
    choices = sorted(set(DAY_CHOICES) | {days})
    options = "".join(f'<option value="{d}"{" selected" if d == days else ""}>{escape(t("dash.days", days=d))}</option>'
                      for d in choices)
    # JSON inside <script>: "</" must not close the element early.
    data = json.dumps(labels(locale), ensure_ascii=False).replace("</", "<\\/")
    return _fill("page.html", lang=locale, other_lang=_other(locale), title=escape(t("dash.title")),
                 period=escape(t("dash.period")), day_options=options, days=str(days),
                 signed_in_as=escape(signed_in), switch_lang=escape(t("dash.switch_lang")),
                 sign_out=escape(t("dash.sign_out")), loading=escape(t("dash.loading")),
                 timezone_note=escape(t("dash.timezone", timezone=timezone)), chart_open=escape(t("dash.chart.open")),
                 chart_missed=escape(t("dash.chart.missed")), chart_refunds=escape(t("dash.chart.refunds")),
                 chart_csat=escape(t("dash.chart.csat")), chart_agents=escape(t("dash.chart.agents")),
                 labels=data)
