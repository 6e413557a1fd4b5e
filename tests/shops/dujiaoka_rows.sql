-- A small dujiaoka shop: the payment gateways its installer ships (a few of them), three goods, and one
-- order per status. Times are the shop's local time (Asia/Shanghai), as Laravel writes them.
INSERT INTO `__PREFIX__pays` (id, pay_name, pay_check, pay_method, merchant_pem, pay_handleroute, is_open, created_at) VALUES
  (1, '支付宝当面付', 'zfbf2f', 2, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-private-key', '/pay/alipay', 1, '2024-03-11 05:04:52'),
  (8, '微信扫码', 'wescan', 2, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-private-key', '/pay/wepay', 1, '2024-03-11 05:04:52'),
  (14, '易支付-支付宝', 'alipay', 1, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-private-key', '/pay/yipay', 1, '2024-03-11 05:04:52'),
  (15, '易支付-微信', 'wxpay', 1, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-private-key', '/pay/yipay', 1, '2024-03-11 05:04:52'),
  (17, 'PayPal', 'paypal', 1, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-private-key', '/pay/paypal', 1, '2024-03-11 05:04:52'),
  (25, 'USDT-TRC20', 'tokenpay-usdt-trc', 1, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-private-key', 'pay/tokenpay', 1, '2024-03-11 05:04:52');

INSERT INTO `__PREFIX__goods` (id, group_id, gd_name, actual_price, type, created_at) VALUES
  (1, 1, 'Steam 钱包充值卡 100元', 98.00, 1, '2026-01-02 10:00:00'),
  (2, 1, '中国移动话费直充 50元', 49.50, 2, '2026-01-02 10:00:00'),
  (3, 2, '爱奇艺黄金会员 月卡', 15.00, 2, '2026-01-02 10:00:00'),
  (4, 2, '游戏代练 定制', 200.00, 2, '2026-01-02 10:00:00');

INSERT INTO `__PREFIX__orders` (order_sn, goods_id, title, type, buy_amount, total_price, actual_price, search_pwd,
    email, info, pay_id, buy_ip, trade_no, status, created_at, updated_at, deleted_at) VALUES
  -- completed, two 卡密 (info joined with PHP_EOL), paid through epay's Alipay
  ('7DWUQ9G1Z5XK2M4A', 1, 'Steam 钱包充值卡 100元 x 2', 1, 2, 196.00, 190.00, 'qwe123', 'Buyer@Example.com',
   'STEAM-AAAA-BBBB-CCCC\r\nSTEAM-DDDD-EEEE-FFFF\r\n', 14, '203.0.113.7', '2026120522001400001', 4,
   '2026-12-05 10:00:00', '2026-12-05 10:00:07', NULL),
  -- paid, waiting for a manual top-up; info is the buyer's own form input, not codes
  ('P2Y8R6T4N1M3K5J7', 2, '中国移动话费直充 50元 x 1', 2, 1, 49.50, 49.50, '', 'topup@example.com',
   '充值手机号:13800138000', 8, '203.0.113.8', '4200001234202612050000001', 2,
   '2026-12-05 11:00:00', '2026-12-05 11:00:01', NULL),
  -- being processed: a membership
  ('H3K7M9Q2W4E6R8T1', 3, '爱奇艺黄金会员 月卡 x 1', 2, 1, 15.00, 15.00, 'pw', 'vip@example.com',
   '会员账号:abc', 1, '203.0.113.9', '2026120522001400003', 3,
   '2026-12-05 12:00:00', '2026-12-05 12:00:02', NULL),
  -- failed delivery, paid by PayPal (no guess: the fallback channel)
  ('F5A1L2E3D4X6Y7Z8', 1, 'Steam 钱包充值卡 100元 x 1', 1, 1, 98.00, 98.00, '', 'fail@example.com',
   NULL, 17, '203.0.113.10', 'PAYID-M123', 5, '2026-12-04 09:00:00', '2026-12-04 09:30:00', NULL),
  -- abnormal, USDT
  ('AB6N0RM4L1ZZ9Q2W', 4, '游戏代练 定制 x 1', 2, 1, 200.00, 200.00, '', 'odd@example.com',
   '', 25, '203.0.113.11', '', 6, '2026-12-04 09:00:00', '2026-12-04 09:30:00', NULL),
  -- never paid, and expired: nothing to refund
  ('UNPA1D0RDER00001', 1, 'Steam 钱包充值卡 100元 x 1', 1, 1, 98.00, 98.00, 'x', 'wait@example.com',
   NULL, 14, '203.0.113.12', '', 1, '2026-12-05 12:30:00', '2026-12-05 12:30:00', NULL),
  ('EXP1RED0RDER0001', 1, 'Steam 钱包充值卡 100元 x 1', 1, 1, 98.00, 98.00, 'x', 'late@example.com',
   NULL, 15, '203.0.113.13', '', -1, '2026-12-01 08:00:00', '2026-12-01 08:05:00', NULL),
  -- completed but deleted by the shop's admin
  ('DE1ETED0RDER0001', 1, 'Steam 钱包充值卡 100元 x 1', 1, 1, 98.00, 98.00, '', 'gone@example.com',
   'STEAM-GONE', 15, '203.0.113.14', 'T1', 4, '2026-12-01 08:00:00', '2026-12-01 08:05:00', '2026-12-02 08:00:00'),
  -- WeChat through epay, on goods that were deleted since (no goods row)
  ('W1X2Y3Z4A5B6C7D8', 99, '已下架商品 x 1', 1, 1, 9.90, 9.90, '', 'wx@example.com',
   'CODE-ONLY-ONE', 15, '203.0.113.15', 'E2026', 4, '2026-12-05 00:30:00', '2026-12-05 00:30:05', NULL);
