package flags

import (
	"crypto/sha1"
	"encoding/binary"
)

// hashScale is float64(0xFFFFFFFFFFFFFFF): PostHog divides the first 15 hex
// digits of the SHA-1 by it (the float rounds to 2^60).
const hashScale = float64(0xFFFFFFFFFFFFFFF)

// Hash returns PostHog's bucketing hash of key, id and salt in [0, 1]:
// int(sha1(key + sep + id + salt)[0:15 hex], 16) / 0xFFFFFFFFFFFFFFF. The
// separator is "." everywhere except the holdout hash, which uses "-".
func Hash(key, sep, id, salt string) float64 {
	n := len(key) + len(sep) + len(id) + len(salt)
	var stack [256]byte
	var buf []byte
	if n <= len(stack) {
		buf = stack[:0]
	} else {
		buf = make([]byte, 0, n)
	}
	buf = append(buf, key...)
	buf = append(buf, sep...)
	buf = append(buf, id...)
	buf = append(buf, salt...)
	sum := sha1.Sum(buf)
	return float64(binary.BigEndian.Uint64(sum[:8])>>4) / hashScale
}
