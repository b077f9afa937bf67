// Package keyenc encodes the store's keys so that the bytewise order of
// encoded keys is the order of their components.
//
// A key is a kind byte, the team as a big-endian int64 with its sign bit
// flipped, then components: group type indexes as one byte, strings escaped
// (0x00 → 0x00 0xFF) and terminated (0x00 0x01), so that no encoded string
// is a prefix of another and a string may hold any byte.
package keyenc
