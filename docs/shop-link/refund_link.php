<?php
// The link behind the shop's 申请退款 button (refundbot README "Signed refund link"); $secret is refundbot's
// [orders] link_secret / REFUNDBOT_ORDER_LINK_SECRET, $bot its @username without the @.
function refund_link(string $bot, string $secret, string $order, int $hours = 72): string {
    $expires = time() + $hours * 3600;
    $sig = substr(hash_hmac('sha256', $order . '_' . $expires, $secret), 0, 24);
    return "https://t.me/{$bot}?start=rf_{$order}_{$expires}_{$sig}";
}
