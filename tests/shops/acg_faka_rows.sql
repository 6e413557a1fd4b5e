-- A small acg-faka shop: its two built-in payments (余额, 支付宝 through Epay) plus a WeChat plugin, goods
-- delivered automatically, by hand and from a shared (对接) platform, and one order per state.
INSERT INTO `__PREFIX__pay` (id, name, code, commodity, create_time, handle) VALUES
  (1, '余额', '#system', 1, '1997-01-01 00:00:00', '#system'),
  (2, '支付宝', 'alipay', 1, '1997-01-01 00:00:00', 'Epay'),
  (3, '微信', 'wxpay', 1, '2026-01-01 00:00:00', 'WxPay'),
  (4, 'USDT', 'usdt', 1, '2026-01-01 00:00:00', 'Usdt');

INSERT INTO `__PREFIX__commodity` (id, category_id, name, price, status, create_time, code, delivery_way, delivery_message, shared_id) VALUES
  (1, 1, '网易云音乐黑胶VIP 月卡 兑换码', 12.00, 1, '2026-01-01 00:00:00', 'A1', 0, NULL, NULL),
  (2, 1, '腾讯视频会员 代充', 20.00, 1, '2026-01-01 00:00:00', 'A2', 1, '正在为您充值，请耐心等待', NULL),
  (3, 1, '王者荣耀点券 直充', 60.00, 1, '2026-01-01 00:00:00', 'A3', 1, NULL, 7);

INSERT INTO `__PREFIX__order` (trade_no, amount, commodity_id, card_num, pay_id, create_time, create_ip, create_device,
    pay_time, status, secret, password, contact, delivery_status, race) VALUES
  -- paid and delivered automatically, three codes
  ('512261205100000123', 36.00, 1, 3, 2, '2026-12-05 10:00:00', '198.51.100.1', 1, '2026-12-05 10:01:30', 1,
   'NEVIP-1111-2222\nNEVIP-3333-4444\nNEVIP-5555-6666', 'abc123', 'buyer@qq.com', 1, NULL),
  -- paid by hand-delivered goods, not yet delivered: secret is the delivery message
  ('733261205110000456', 20.00, 2, 1, 3, '2026-12-05 11:00:00', '198.51.100.2', 0, '2026-12-05 11:00:40', 1,
   '正在为您充值，请耐心等待', NULL, '13800138000', 0, NULL),
  -- paid from the balance, stock ran out: acg-faka's apology instead of codes
  ('204261205120000789', 12.00, 1, 1, 1, '2026-12-05 12:00:00', '198.51.100.3', 2, '2026-12-05 12:00:05', 1,
   '很抱歉，有人在你付款之前抢走了商品，请联系客服。', '', '10001', 1, NULL),
  -- shared platform goods, delivered, paid in USDT (no guess: the fallback channel)
  ('955261205130000321', 60.00, 3, 1, 4, '2026-12-05 13:00:00', '198.51.100.4', 0, '2026-12-05 13:00:10', 1,
   'ORDER-OK 6480点券已到账', 'pw', 'gamer@example.com', 1, NULL),
  -- not paid
  ('100261205140000000', 12.00, 1, 1, 2, '2026-12-05 14:00:00', '198.51.100.5', 0, NULL, 0,
   NULL, NULL, 'x@example.com', 0, NULL);
