// Package digest stands in for github.com/opencontainers/go-digest: a Digest is a
// string "algorithm:hex". The stand-in hashes with FNV-1a 64 and labels it "xxh3"
// (the real engine's algorithm), so a digest is always 21 bytes.
package digest

import "strconv"

// Digest is a string-shaped content/recipe digest (2 words: ptr, len).
type Digest string

// String returns the digest as a string.
func (d Digest) String() string { return string(d) }

// FromString hashes s: "xxh3:" + 16 lowercase hex digits.
func FromString(s string) Digest {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	hex := strconv.FormatUint(h, 16)
	for len(hex) < 16 {
		hex = "0" + hex
	}
	return Digest("xxh3:" + hex)
}
