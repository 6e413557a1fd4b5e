"""An operator's own python-telegram-bot shop bot with refundbot inside it: one `add_refundbot` call.

    python docs/examples/ptb_shop_bot.py --config refundbot.toml

The config is refundbot's (config.example.toml): its [telegram] token and api_base are the shop bot's
too. The shop keeps its own commands (/shop here) in handler group 0 and ends an update it answered
with ApplicationHandlerStop; everything else reaches refundbot in group 1, which starts and stops with
run_polling and sends through this Application's bot.
"""

from __future__ import annotations

import argparse

from telegram import Update
from telegram.ext import ApplicationBuilder, ApplicationHandlerStop, CommandHandler, ContextTypes

from bot.config import load_config
from bot.embed import add_refundbot
from bot.ptb_adapter import ChatSerialProcessor


async def catalogue(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("本店商品：王者荣耀点券卡、话费直充、视频会员。退款请发送 /refund")
    raise ApplicationHandlerStop  # answered: refundbot's group does not see it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="refundbot's config file (TOML)")
    config = load_config(parser.parse_args().config)
    # Many chats at once, each chat's updates in order (PTB's own concurrency would interleave them).
    builder = ApplicationBuilder().token(config.telegram.token).concurrent_updates(ChatSerialProcessor(256))
    if config.telegram.api_base:
        base = config.telegram.api_base.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    application = builder.build()
    application.add_handler(CommandHandler("shop", catalogue), group=0)
    add_refundbot(application, config, group=1)
    application.run_polling(timeout=config.telegram.poll_timeout)


if __name__ == "__main__":
    main()
