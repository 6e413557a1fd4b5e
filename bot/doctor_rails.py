"""`refundbot doctor`'s `rails` check: each rail gateway in use is built from the configuration and asked
to prove its keys can sign and parse (`async def check(self) -> str`), without calling the rail.

Findings are (level, text) pairs, level "ok" / "warn" / "fail", as bot.calendar_check's: bot.doctor
makes them its own Findings (and imports this module, not the other way round)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal

from bot.config import PlatformConfig
from dialogs.ports import RefundGateway

# No keys of their own: the platform check covers http's URL and secret; manual calls nothing.
KEYLESS = frozenset({"manual", "http"})

RailFinding = tuple[Literal["ok", "warn", "fail"], str]


def ok(text: str) -> RailFinding:
    return "ok", text


def warn(text: str) -> RailFinding:
    return "warn", text


def fail(text: str) -> RailFinding:
    return "fail", text


async def rail_findings(platform: PlatformConfig,
                        builders: Mapping[str, Callable[[PlatformConfig], RefundGateway]] | None = None,
                        ) -> AsyncIterator[RailFinding]:
    from bot.rails import BUILDERS, gateway_names

    builders = BUILDERS if builders is None else builders
    for name in gateway_names(platform):
        if name in KEYLESS:
            continue
        if name not in builders:
            yield fail(f"[platform.rails] names a gateway {name!r} that does not exist (known: {', '.join(builders)})")
            continue
        try:
            gateway = builders[name](platform)
        except Exception as exc:  # noqa: BLE001 - a missing key file, a bad setting: named by the builder
            yield fail(f"{name}: {_first_line(exc) or type(exc).__name__} "
                       f"(see [platform.{name}] in config.example.toml)")
            continue
        try:
            yield await _checked(name, gateway)
        finally:
            await gateway.close()


async def _checked(name: str, gateway: RefundGateway) -> RailFinding:
    check = getattr(gateway, "check", None)
    if check is None or not inspect.iscoroutinefunction(check):
        return warn(f"{name}: this gateway cannot check its keys without calling the rail")
    try:
        said = await check()
    except ValueError as exc:
        return fail(f"{name}: {_first_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - a key that does not even load
        return fail(f"{name}: {type(exc).__name__}: {_first_line(exc)}")
    return ok(f"{name}: {said}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
