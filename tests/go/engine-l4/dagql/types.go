package dagql

import (
	"context"
	"fmt"
)

// Typed is a value the cache can hold.
type Typed interface {
	TypeName() string
}

// String is a plain GraphQL String value.
type String string

func (String) TypeName() string { return "String" }

// ContentValue is a value with a content digest: the cache indexes it as an extra
// digest of the result's output class when the result is published.
type ContentValue struct {
	Text    string
	Content string
}

func (ContentValue) TypeName() string { return "File" }

// TypeResolver resolves type names (the cache only passes it through).
type TypeResolver interface {
	ResolveType(name string) (string, bool)
}

// AnyResult is any cache result (Result[T] boxed in an interface; the data pointer
// points at the Result: shared 0, hitCache 8).
type AnyResult interface {
	Unwrap() Typed
	HitCache() bool
	cacheSharedResult() *sharedResult
}

// Result[T] (24 B): shared 0, hitCache 8, derefView 9, nullableWrapped 10.
type Result[T Typed] struct {
	shared          *sharedResult
	hitCache        bool
	derefView       bool
	nullableWrapped bool
}

func (r Result[T]) Unwrap() Typed {
	if r.shared == nil {
		return nil
	}
	return r.shared.self
}

func (r Result[T]) HitCache() bool { return r.hitCache }

func (r Result[T]) cacheSharedResult() *sharedResult { return r.shared }

// NewResult returns a detached result (not in the cache, id 0) holding v, as a resolver
// returns it.
func NewResult(v Typed) AnyResult {
	return Result[Typed]{shared: &sharedResult{self: v, hasValue: true}}
}

// ResultID returns the cache's sharedResult id of res (0 when detached or nil).
func ResultID(res AnyResult) uint64 {
	if res == nil {
		return 0
	}
	if s := res.cacheSharedResult(); s != nil {
		return uint64(s.id)
	}
	return 0
}

// OnReleaseFunc runs after a result left the cache.
type OnReleaseFunc func(context.Context) error

// OnReleaser is implemented by values with release work.
type OnReleaser interface {
	OnRelease(context.Context) error
}

func runOnReleaseFuncs(ctx context.Context, fns []OnReleaseFunc) error {
	var errs []error
	for _, fn := range fns {
		if fn == nil {
			continue
		}
		if err := fn(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("on release: %v", errs)
}

type callContextKey struct{}

// ContextWithCall records the call frame being resolved in ctx.
func ContextWithCall(ctx context.Context, call *ResultCall) context.Context {
	return context.WithValue(ctx, callContextKey{}, call)
}

// hashing: the real engine uses xxh3; the stand-in hashes with FNV-1a 64 and keeps the
// "xxh3:" + 16 hex format.
type hasher struct{ h uint64 }

func newHasher() *hasher { return &hasher{h: 14695981039346656037} }

func (h *hasher) str(s string) {
	for i := 0; i < len(s); i++ {
		h.h ^= uint64(s[i])
		h.h *= 1099511628211
	}
	h.h ^= 0xff
	h.h *= 1099511628211
}

func (h *hasher) digest() string { return fmt.Sprintf("xxh3:%016x", h.h) }

// HashDigest hashes parts into a digest string (for content digests).
func HashDigest(parts ...string) string {
	h := newHasher()
	for _, p := range parts {
		h.str(p)
	}
	return h.digest()
}
