"""`python -m sandbox [--host H] [--port P] [--timezone Z]` serves the emulator (and its web chat at /);
`python -m sandbox chat --url URL --user-id N` chats with the bot through a running one."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .server import DEFAULT_TOKEN, Emulator
from .state import EmulatorState
from .terminal import run_terminal_chat


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Telegram Bot API emulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8081, help="port (0 picks a free one)")
    parser.add_argument("--update-id-base", type=int, default=None, help="first update_id (default: random)")
    parser.add_argument("--timezone", default=None,
                        help="IANA zone the web page shows times in, e.g. Asia/Shanghai (default: the browser's)")
    args = parser.parse_args(argv)

    async def main() -> None:
        emu = Emulator(args.host, args.port, state=EmulatorState(update_id_base=args.update_id_base),
                       timezone=args.timezone)
        async with emu:
            print(f"Telegram Bot API emulator listening on {emu.base_url}", flush=True)
            print(f"  bot API:  {emu.base_url}/bot<token>/<method>   (any token, e.g. {DEFAULT_TOKEN})")
            print(f"  control:  {emu.control_url}/   chat: python -m sandbox chat --url {emu.base_url} --user-id 1001")
            print(f"  web chat: {emu.web_url}   (register users and groups through the control API first)",
                  flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def _chat(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox chat", description="chat with the bot as a user")
    parser.add_argument("--url", default="http://127.0.0.1:8081", help="emulator base URL")
    parser.add_argument("--user-id", type=int, default=1001)
    parser.add_argument("--first-name", default="Customer")
    parser.add_argument("--language-code", default="zh-hans")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run_terminal_chat(args.url, args.user_id, args.first_name, args.language_code, prompt="> "))
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "chat":
        return _chat(argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return _serve(argv)


if __name__ == "__main__":
    sys.exit(main())
