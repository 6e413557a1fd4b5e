"""An operator's own aiogram shop bot with refundbot inside it: one `include_router` call.

    python docs/examples/aiogram_shop_bot.py --config refundbot.toml

The config is refundbot's (config.example.toml): its [telegram] token and api_base are the shop bot's
too. The shop keeps its own commands (/shop here); everything else reaches refundbot, which starts and
stops with the dispatcher and sends through this bot.
"""

from __future__ import annotations

import argparse
import asyncio

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command
from aiogram.types import Message

from bot.config import load_config
from bot.embed import refundbot_router

shop = Router(name="shop")


@shop.message(Command("shop"))
async def catalogue(message: Message) -> None:
    await message.answer("本店商品：王者荣耀点券卡、话费直充、视频会员。退款请发送 /refund")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="refundbot's config file (TOML)")
    config = load_config(parser.parse_args().config)
    api = config.telegram.api_base
    bot = Bot(config.telegram.token,
              session=AiohttpSession(api=TelegramAPIServer.from_base(api)) if api else None)
    dp = Dispatcher()
    dp.include_router(shop)  # the shop's own handlers first
    dp.include_router(refundbot_router(config))  # refundbot takes what they leave
    await dp.start_polling(bot, polling_timeout=config.telegram.poll_timeout)


if __name__ == "__main__":
    asyncio.run(main())
