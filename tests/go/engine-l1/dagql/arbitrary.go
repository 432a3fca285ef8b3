package dagql

import "context"

// ArbitraryCachedResult is an opaque cached value (one ref on it).
type ArbitraryCachedResult interface {
	Value() any
	HitCache() bool
	Release(context.Context) error
}
