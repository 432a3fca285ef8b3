// Package call holds the ID-side types the cache reads (reduced stand-in).
package call

import "github.com/dagger/dagger/dagql/digest"

// ExtraDigest is an additional digest of a call's result (e.g. its content), 32 B:
// Digest 0/8, Label 16/24.
type ExtraDigest struct {
	Digest digest.Digest
	Label  string
}
