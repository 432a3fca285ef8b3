package dagql

import (
	"context"
)

// Typed is any value the cache stores.
type Typed interface {
	TypeName() string
}

// TypeResolver resolves type names (the real one is the dagql Server); an interface,
// so it takes two registers.
type TypeResolver interface {
	ResolveTypeName(name string) (string, bool)
}

// AnyResult is what GetOrInitCall returns: a boxed Result[T] whose first word is the
// *sharedResult and whose hitCache bool sits at +8.
type AnyResult interface {
	Unwrap() Typed
	HitCache() bool
	cacheSharedResult() *sharedResult
}

// OnReleaseFunc runs after a result left the cache.
type OnReleaseFunc func(context.Context) error

// OnReleaser is implemented by values that need cleanup.
type OnReleaser interface {
	OnRelease(context.Context) error
}

func (r Result[T]) Unwrap() Typed {
	if r.shared == nil {
		return nil
	}
	return r.shared.self
}

func (r Result[T]) HitCache() bool { return r.hitCache }

func (r Result[T]) cacheSharedResult() *sharedResult { return r.shared }

// Self returns the value.
func (r Result[T]) Self() T {
	var zero T
	if r.shared == nil {
		return zero
	}
	v, _ := r.shared.self.(T)
	return v
}

// NewResult returns a detached result (not cache-backed) as a resolver would.
func NewResult[T Typed](self T) Result[T] {
	return Result[T]{shared: &sharedResult{self: self, hasValue: true}}
}

// ResultID returns the sharedResult.id of a cache-backed result (0 otherwise).
func ResultID(res AnyResult) uint64 {
	if res == nil {
		return 0
	}
	if s := res.cacheSharedResult(); s != nil {
		return uint64(s.id)
	}
	return 0
}

// ContextWithCall records the call a resolver runs for (as the real engine does).
func ContextWithCall(ctx context.Context, frame *ResultCall) context.Context {
	return context.WithValue(ctx, currentCallKey{}, frame)
}

type currentCallKey struct{}
