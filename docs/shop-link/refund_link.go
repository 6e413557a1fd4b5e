// The link behind the shop's 申请退款 button (refundbot README "Signed refund link"); secret is refundbot's
// [orders] link_secret / REFUNDBOT_ORDER_LINK_SECRET, bot its @username without the @.
package refundlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

func RefundLink(bot, secret, order string, ttl time.Duration) string {
	expires := time.Now().Add(ttl).Unix()
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%s_%d", order, expires)
	return fmt.Sprintf("https://t.me/%s?start=rf_%s_%d_%s", bot, order, expires, hex.EncodeToString(mac.Sum(nil))[:24])
}
