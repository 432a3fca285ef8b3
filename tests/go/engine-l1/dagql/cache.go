// Package dagql is a stand-in for the Dagger engine's dagql cache at release v0.20.8
// ("L1"): the same function names, signatures (hence register assignment), closures,
// struct layouts and decision-point line numbers as the real engine, with the
// behaviour reduced to what the cache itself does. See layout.go for the asserted
// offsets and cmd/engine for the workload that drives it.
package dagql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"math/rand"
	"sync"
	"time"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/db"
	"github.com/dagger/dagger/engine"
)

// Cache is the base (engine-wide) cache. Sessions use it through a SessionCache; the
// concrete *cache is only ever called through this interface.
type Cache interface {
	GetOrInitCall(
		ctx context.Context,
		key CacheKey,
		fn func(context.Context) (AnyResult, error),
	) (AnyResult, error)

	GetOrInitArbitrary(
		ctx context.Context,
		callKey string,
		fn func(context.Context) (any, error),
	) (ArbitraryCachedResult, error)

	// Size is the number of index entries (ongoing + every completed list + arbitrary).
	Size() int

	// EntryStats breaks Size down by index.
	EntryStats() CacheEntryStats

	// GCLoop periodically deletes expired TTL metadata.
	GCLoop(context.Context)
}

// pad:53
//

// ValueFunc returns an fn that yields v (inlined at its call sites: the closure is
// named after the caller, e.g. (*SessionCache).GetOrInitCall.ValueFunc.func2).
func ValueFunc(v AnyResult) func(context.Context) (AnyResult, error) {
	return func(context.Context) (AnyResult, error) {
		return v, nil
	}
}

func ArbitraryValueFunc(v any) func(context.Context) (any, error) {
	return func(context.Context) (any, error) {
		return v, nil
	}
}

// CacheKey identifies a call. Size 40: ID 0, ConcurrencyKey 8/16, TTL 24,
// DoNotCache 32 (five integer words, register-split when passed).
type CacheKey struct {
	ID             *call.ID
	ConcurrencyKey string
	TTL            int64
	DoNotCache     bool
}

// CacheEntryStats is a breakdown of Size (40 B).
type CacheEntryStats struct {
	OngoingCalls            int
	CompletedCalls          int
	CompletedCallsByContent int
	OngoingArbitrary        int
	CompletedArbitrary      int
}

type ctxStorageKey struct{}

// pad:104
//
//
//
//
//
//
//
//
//
//
//
//
//

// CurrentStorageKey is the storage key of the call whose fn is running (buildkit mixes
// it into its own cache keys in the real engine).
//
//go:noinline
func CurrentStorageKey(ctx context.Context) string {
	s, _ := ctx.Value(ctxStorageKey{}).(string)
	return s
}

// pad:113
//
//
//
func ctxWithStorageKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, ctxStorageKey{}, key)
}

var ErrCacheRecursiveCall = errors.New("recursive call detected")

// NewCache returns an empty base cache whose TTL metadata lives in queries.
func NewCache(ctx context.Context, queries *db.Queries) (Cache, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &cache{db: queries}, nil
}

// randomStorageKey stands in for rand.Text(): a throwaway storage key for DoNotCache
// calls.
func randomStorageKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b [26]byte
	for i := range b {
		b[i] = alphabet[rand.Intn(len(alphabet))]
	}
	return string(b[:])
}

// pad:170
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// pad:172
// cache is the base cache. Size 56; one mutex guards every index and refcount.
type cache struct {
	mu sync.Mutex // 0

	ongoingCalls            map[callConcurrencyKeys]*sharedResult // 8
	completedCalls          map[string]*resultList                // 16 (storage keys and resultCallKeys)
	completedCallsByContent map[string]*resultList                // 24
	ongoingArbitraryCalls   map[string]*sharedArbitraryResult     // 32
	completedArbitraryCalls map[string]*sharedArbitraryResult     // 40

	db *db.Queries // 48
}

// pad:191
//
//
//
//
//
//
type callConcurrencyKeys struct {
	callKey        string
	concurrencyKey string
}

// PostCallFunc runs after a cached result is returned to a caller.
type PostCallFunc = func(context.Context) error

// OnReleaseFunc runs when the last ref to a result is released.
type OnReleaseFunc = func(context.Context) error

// pad:203
type sharedResult struct {
	cache *cache // 0 (nil: detached, not cache-backed)

	storageKey          string // 8
	callConcurrencyKeys        // 24 (callKey 24, concurrencyKey 40)

	constructor *call.ID     // 56
	self        Typed        // 64
	objType     ObjectType   // 80
	hasValue    bool         // 96
	postCall    PostCallFunc // 104
	err         error        // 112

	safeToPersistCache bool   // 128
	contentDigestKey   string // 136
	resultCallKey      string // 152

	onRelease   OnReleaseFunc               // 168
	persistToDB func(context.Context) error // 176

	waitCh  chan struct{}           // 184
	cancel  context.CancelCauseFunc // 192
	waiters int                     // 200

	refCount int // 208 (guarded by cache.mu)
}

// pad:234
//
//
//
type sharedArbitraryResult struct {
	cache *cache // 0

	callKey string // 8

	value     any           // 24
	err       error         // 40
	onRelease OnReleaseFunc // 56

	waitCh  chan struct{}           // 64
	cancel  context.CancelCauseFunc // 72
	waiters int                     // 80

	refCount int // 88
}

// pad:251
func (res *sharedArbitraryResult) release(ctx context.Context) error {
	if res == nil || res.cache == nil {
		return nil
	}
	c := res.cache
	c.mu.Lock()
	res.refCount--
	after := res.refCount
	var onRelease OnReleaseFunc
	if after == 0 && res.waiters == 0 {
		if c.ongoingArbitraryCalls[res.callKey] == res {
			delete(c.ongoingArbitraryCalls, res.callKey)
		}
		if c.completedArbitraryCalls[res.callKey] == res {
			delete(c.completedArbitraryCalls, res.callKey)
		}
		onRelease = res.onRelease
	}
	c.mu.Unlock()
	traceArbitraryRelease(ctx, res.callKey, after)
	if onRelease == nil {
		return nil
	}
	return onRelease(ctx)
}

// arbitraryResult is one ref on a sharedArbitraryResult. Size 16: shared 0,
// hitCache 8.
type arbitraryResult struct {
	shared   *sharedArbitraryResult
	hitCache bool
}

func (r arbitraryResult) Value() any {
	if r.shared == nil {
		return nil
	}
	return r.shared.value
}

func (r arbitraryResult) HitCache() bool { return r.hitCache }

func (r arbitraryResult) Release(ctx context.Context) error {
	if r.shared == nil {
		return nil
	}
	return r.shared.release(ctx)
}

// newDetachedResult wraps a value in a result that owns no cache entry.
func newDetachedResult[T Typed](constructor *call.ID, self T) Result[T] {
	return Result[T]{shared: &sharedResult{constructor: constructor, self: self, hasValue: true}}
}

// pad:312
//
//
//
//
//
//
func (res *sharedResult) release(ctx context.Context) error {
	if res == nil || res.cache == nil {
		// detached (DoNotCache) results own no cache entry
		return nil
	}
	c := res.cache
	c.mu.Lock()
	res.refCount--
	var onRelease OnReleaseFunc
	removed := res.refCount == 0 && res.waiters == 0
	if removed {
		delete(c.ongoingCalls, res.callConcurrencyKeys)
		c.dropFromListLocked(c.completedCalls, res.storageKey, res)
		if res.resultCallKey != "" && res.resultCallKey != res.storageKey {
			c.dropFromListLocked(c.completedCalls, res.resultCallKey, res)
		}
		if res.contentDigestKey != "" {
			c.dropFromListLocked(c.completedCallsByContent, res.contentDigestKey, res)
		}
		onRelease = res.onRelease
	}
	after := res.refCount
	c.mu.Unlock()
	traceRelease(ctx, res, after, removed)
	if onRelease == nil {
		return nil
	}
	return onRelease(ctx)
}

func (c *cache) dropFromListLocked(m map[string]*resultList, key string, res *sharedResult) {
	lst := m[key]
	if lst == nil {
		return
	}
	lst.remove(res)
	if lst.empty() {
		delete(m, key)
	}
}

// pad:358
//
//
// Result is one ref on a shared result. Size 24 for every T: shared 0,
// idOverride 8, hitCache 16, hitContentDigestCache 17.
type Result[T Typed] struct {
	shared                *sharedResult
	idOverride            *call.ID
	hitCache              bool
	hitContentDigestCache bool
}

var _ AnyResult = Result[Typed]{}

func (r Result[T]) TypeName() string {
	if r.shared != nil && r.shared.self != nil {
		return r.shared.self.TypeName()
	}
	var zero T
	return zero.TypeName()
}

// Self returns the value.
func (r Result[T]) Self() T {
	var zero T
	if r.shared == nil {
		return zero
	}
	self, _ := r.shared.self.(T)
	return self
}

func (r Result[T]) Unwrap() Typed {
	if r.shared == nil {
		return nil
	}
	return r.shared.self
}

// ID is the override (content-digest hits: the request's ID) or the constructor.
func (r Result[T]) ID() *call.ID {
	if r.idOverride != nil {
		return r.idOverride
	}
	if r.shared == nil {
		return nil
	}
	return r.shared.constructor
}

func (r Result[T]) PostCall(ctx context.Context) error {
	if r.shared == nil || r.shared.postCall == nil {
		return nil
	}
	return r.shared.postCall(ctx)
}

func (r Result[T]) IsSafeToPersistCache() bool {
	return r.shared != nil && r.shared.safeToPersistCache
}

func (r Result[T]) HitCache() bool { return r.hitCache }

func (r Result[T]) HitContentDigestCache() bool { return r.hitContentDigestCache }

// pad:550
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
func (r Result[T]) Release(ctx context.Context) error {
	if r.shared == nil {
		return nil
	}
	if r.shared.cache == nil {
		if r.shared.onRelease != nil {
			return r.shared.onRelease(ctx)
		}
		return nil
	}
	return r.shared.release(ctx)
}

func (r Result[T]) cacheSharedResult() *sharedResult { return r.shared }

func (r Result[T]) cacheHasValue() bool { return r.shared != nil && r.shared.hasValue }

// pad:568
type ObjectResult[T Typed] struct {
	Result[T]
	class Class[T]
}

func (r ObjectResult[T]) ObjectType() ObjectType { return r.class }

func (r ObjectResult[T]) cacheSharedResult() *sharedResult { return r.shared }

func (r ObjectResult[T]) cacheHasValue() bool { return r.shared != nil && r.shared.hasValue }

type cacheBackedResult interface {
	cacheSharedResult() *sharedResult
}

type cacheValueResult interface {
	cacheHasValue() bool
}

// pad:649
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
type cacheContextKey struct {
	key   string
	cache *cache
}

type trackNilResultCtxKey struct{}

func withTrackNilResult(ctx context.Context) context.Context {
	return context.WithValue(ctx, trackNilResultCtxKey{}, struct{}{})
}

func shouldTrackNilResult(ctx context.Context) bool {
	return ctx.Value(trackNilResultCtxKey{}) != nil
}

type arbitraryCacheContextKey struct {
	callKey string
	cache   *cache
}

func (c *cache) GCLoop(ctx context.Context) {
	ticker := time.NewTicker(10 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if c.db == nil {
			continue
		}
		err := c.db.GCExpiredCalls(ctx, db.GCExpiredCallsParams{Now: time.Now().Unix()})
		if err != nil {
			logError("failed to GC expired function calls", err)
		}
	}
}

func (c *cache) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.ongoingCalls) + len(c.ongoingArbitraryCalls) + len(c.completedArbitraryCalls)
	for _, lst := range c.completedCalls {
		n += lst.len()
	}
	for _, lst := range c.completedCallsByContent {
		n += lst.len()
	}
	return n
}

// pad:703
//
//
func (c *cache) EntryStats() CacheEntryStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := CacheEntryStats{
		OngoingCalls:       len(c.ongoingCalls),
		OngoingArbitrary:   len(c.ongoingArbitraryCalls),
		CompletedArbitrary: len(c.completedArbitraryCalls),
	}
	for _, lst := range c.completedCalls {
		st.CompletedCalls += lst.len()
	}
	for _, lst := range c.completedCallsByContent {
		st.CompletedCallsByContent += lst.len()
	}
	return st
}

func (c *cache) GetOrInitArbitrary(
	ctx context.Context,
	callKey string,
	fn func(context.Context) (any, error),
) (ArbitraryCachedResult, error) {
	if callKey == "" {
		return nil, errors.New("cache call key is empty")
	}
	tr := arbitraryTraceFrom(ctx)
	if ctx.Value(arbitraryCacheContextKey{callKey: callKey, cache: c}) != nil {
		return nil, ErrCacheRecursiveCall
	}
	// pad:733
	c.mu.Lock()
	if c.ongoingArbitraryCalls == nil {
		c.ongoingArbitraryCalls = make(map[string]*sharedArbitraryResult)
	}
	if c.completedArbitraryCalls == nil {
		c.completedArbitraryCalls = make(map[string]*sharedArbitraryResult)
	}
	// pad:741
	if res := c.completedArbitraryCalls[callKey]; res != nil {
		res.refCount++
		c.mu.Unlock()
		tr.setPath("hit")
		return arbitraryResult{shared: res, hitCache: true}, nil
	}
	// pad:750
	//
	//
	if res := c.ongoingArbitraryCalls[callKey]; res != nil {
		res.waiters++
		tr.setPath("join")
		c.mu.Unlock()
		return c.waitArbitrary(ctx, res, false)
	}
	callCtx := context.WithValue(ctx, arbitraryCacheContextKey{callKey: callKey, cache: c}, struct{}{})
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(callCtx))
	res := &sharedArbitraryResult{
		cache:   c,
		callKey: callKey,
		waitCh:  make(chan struct{}),
		cancel:  cancel,
		waiters: 1,
	}
	c.ongoingArbitraryCalls[callKey] = res
	tr.setPath("new")
	// pad:769
	//
	go func() {
		defer close(res.waitCh)
		val, err := fn(callCtx)
		res.err = err
		if err != nil {
			return
		}
		res.value = val
		if r, ok := val.(OnReleaser); ok {
			res.onRelease = r.OnRelease
		}
	}()
	c.mu.Unlock()
	return c.waitArbitrary(ctx, res, true)
}

// pad:786
func (c *cache) GetOrInitCall(
	ctx context.Context,
	key CacheKey,
	fn func(context.Context) (AnyResult, error),
) (AnyResult, error) {
	if key.ID == nil {
		return nil, errors.New("cache key ID is nil")
	}
	tr := callTraceFrom(ctx)
	if key.DoNotCache {
		// not cached: fn runs right here on the caller's goroutine, no lookup, no
		// lock, nothing indexed; the result is detached (cache == nil)
		tr.setUncached()
		// pad:800
		ctx = ctxWithStorageKey(ctx, randomStorageKey())
		// pad:802
		val, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, nil
		}
		detached := &sharedResult{
			constructor:        val.ID(),
			self:               val.Unwrap(),
			hasValue:           true,
			postCall:           val.PostCall,
			safeToPersistCache: val.IsSafeToPersistCache(),
		}
		if r, ok := val.Unwrap().(OnReleaser); ok {
			detached.onRelease = r.OnRelease
		}
		if obj, ok := val.(AnyObjectResult); ok {
			detached.objType = obj.ObjectType()
		}
		plain := Result[Typed]{shared: detached}
		if detached.objType == nil {
			return plain, nil
		}
		obj, err := detached.objType.New(plain)
		if err != nil {
			return nil, fmt.Errorf("normalize uncached object result: %w", err)
		}
		return obj, nil
	}

	// pad:840
	//
	//
	//
	//
	//
	//
	callKey := key.ID.Digest().String()
	callConcKeys := callConcurrencyKeys{callKey: callKey, concurrencyKey: key.ConcurrencyKey}

	// The storage key is what results are stored under: the call key, except on the
	// TTL path where the DB row decides (and a fresh row is session-scoped until the
	// first caller persists it).
	storageKey := callKey
	var persistToDB func(context.Context) error
	// pad:853
	//
	//
	//
	//
	if key.TTL != 0 && c.db != nil {
		row, err := c.db.SelectCall(ctx, callKey)
		switch {
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			logError("failed to select call from cache", err)
		case err != nil || row == nil:
			md, err := engine.ClientMetadataFromContext(ctx)
			if err != nil {
				return nil, fmt.Errorf("get client metadata: %w", err)
			}
			storageKey = call.HashString(storageKey, md.SessionID).String()
			expiration := time.Now().Unix() + key.TTL
			// pad:878
			//
			//
			//
			//
			//
			//
			//
			//
			//
			//
			//
			//
			persistToDB = func(ctx context.Context) error {
				return c.db.SetExpiration(ctx, db.SetExpirationParams{
					CallKey:    callKey,
					StorageKey: storageKey,
					Expiration: expiration,
				})
			}
		case row.Expiration < time.Now().Unix():
			md, err := engine.ClientMetadataFromContext(ctx)
			if err != nil {
				return nil, fmt.Errorf("get client metadata: %w", err)
			}
			storageKey = call.HashString(storageKey, md.SessionID).String()
			expiration := time.Now().Unix() + key.TTL
			// pad:900
			//
			//
			//
			//
			//
			//
			//
			persistToDB = func(ctx context.Context) error {
				return c.db.SetExpiration(ctx, db.SetExpirationParams{
					CallKey:        callKey,
					StorageKey:     storageKey,
					Expiration:     expiration,
					PrevStorageKey: row.StorageKey,
				})
			}
		default:
			storageKey = row.StorageKey
		}
	}

	// pad:918
	//
	//
	//
	//
	ctx = ctxWithStorageKey(ctx, storageKey)
	// pad:920
	if ctx.Value(cacheContextKey{storageKey, c}) != nil && tr.markRecursive() {
		return nil, ErrCacheRecursiveCall
	}
	// pad:924
	contentKey := key.ID.ContentDigest().String()
	// pad:926
	c.mu.Lock()
	if c.ongoingCalls == nil {
		c.ongoingCalls = make(map[callConcurrencyKeys]*sharedResult)
	}
	if c.completedCalls == nil {
		c.completedCalls = make(map[string]*resultList)
	}
	if c.completedCallsByContent == nil {
		c.completedCallsByContent = make(map[string]*resultList)
	}
	// pad:937
	if lst, ok := c.completedCalls[storageKey]; ok {
		if res := lst.first(); res != nil {
			res.refCount++
			c.mu.Unlock()
			tr.setPath("hit")
			return res.hitResult(ctx, Result[Typed]{shared: res, hitCache: true})
		}
	}
	// pad:965
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if contentKey != "" {
		if lst, ok := c.completedCallsByContent[contentKey]; ok {
			if res := lst.first(); res != nil {
				res.refCount++
				c.mu.Unlock()
				tr.setPath("hit_content")
				// the caller keeps seeing the recipe it asked for
				return res.hitResult(ctx, Result[Typed]{
					shared:                res,
					idOverride:            key.ID,
					hitCache:              true,
					hitContentDigestCache: true,
				})
			}
		}
	}
	// pad:1003
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if key.ConcurrencyKey != "" {
		if res, ok := c.ongoingCalls[callConcKeys]; ok {
			tr.setOngoing("join", res, res.waiters+1)
			res.waiters++
			c.mu.Unlock()
			return c.wait(ctx, res, false)
		}
	}

	// a new execution, whose ctx is only canceled once every waiter gave up
	callCtx := context.WithValue(ctx, cacheContextKey{storageKey, c}, struct{}{})
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(callCtx))
	res := &sharedResult{
		cache:               c,
		storageKey:          storageKey,
		callConcurrencyKeys: callConcKeys,
		persistToDB:         persistToDB,
		waitCh:              make(chan struct{}),
		cancel:              cancel,
		waiters:             1,
	}
	// pad:1028
	//
	//
	//
	if key.ConcurrencyKey != "" {
		c.ongoingCalls[callConcKeys] = res
	}
	tr.setOngoing("miss", res, res.waiters)
	go func() {
		defer close(res.waitCh)
		val, err := fn(traceExecStart(res, callCtx))
		res.err = err
		if val == nil {
			return
		}
		res.constructor = val.ID()
		res.self = val.Unwrap()
		res.hasValue = true
		res.postCall = val.PostCall
		res.safeToPersistCache = val.IsSafeToPersistCache()
		res.onRelease = nil
		res.objType = nil
		if inner, ok := val.(cacheBackedResult); ok {
			if sr := inner.cacheSharedResult(); sr != nil && sr.cache != nil {
				res.onRelease = val.Release // this entry now owns the inner ref
			}
		}
		if res.onRelease == nil {
			if r, ok := val.Unwrap().(OnReleaser); ok {
				res.onRelease = r.OnRelease
			}
		}
		if obj, ok := val.(AnyObjectResult); ok {
			res.objType = obj.ObjectType()
		}
		if res.constructor != nil {
			res.contentDigestKey = res.constructor.ContentDigest().String()
			res.resultCallKey = res.constructor.Digest().String()
		}
	}()
	// pad:1066
	//
	c.mu.Unlock()
	return c.wait(ctx, res, true)
}

func (c *cache) wait(ctx context.Context, res *sharedResult, isFirstCaller bool) (AnyResult, error) {
	var hitCache bool
	var err error

	// already done when we got here: counts as a hit (unless we are the first caller)
	select {
	case <-res.waitCh:
		hitCache = true
		err = res.err
	default:
		select {
		case <-res.waitCh:
			err = res.err
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}

	// pad:1090
	//
	c.mu.Lock()
	// pad:1092
	res.waiters--
	if res.waiters == 0 {
		res.cancel(err)
		traceOngoingDone(res)
	}

	if err == nil {
		persistable := res.safeToPersistCache
		// pad:1101
		delete(c.ongoingCalls, res.callConcurrencyKeys)
		lst, ok := c.completedCalls[res.storageKey]
		switch {
		case ok && lst.first() != nil:
			res = lst.first()
		case ok:
			lst.add(res)
		default:
			lst = newResultList()
			// pad:1111
			lst.add(res)
			c.completedCalls[res.storageKey] = lst
		}

		if res.resultCallKey != "" && res.resultCallKey != res.storageKey {
			byResult := c.completedCalls[res.resultCallKey]
			if byResult == nil {
				byResult = newResultList()
				c.completedCalls[res.resultCallKey] = byResult
			}
			// pad:1122
			byResult.add(res)
		}

		if res.contentDigestKey != "" {
			byContent := c.completedCallsByContent[res.contentDigestKey]
			if byContent == nil {
				byContent = newResultList()
				c.completedCallsByContent[res.contentDigestKey] = byContent
			}
			// pad:1132
			byContent.add(res)
		}

		res.refCount++
		c.mu.Unlock()

		if isFirstCaller && res.persistToDB != nil && persistable {
			if err := res.persistToDB(ctx); err != nil {
				logError("failed to persist cache expiration", err)
			}
		}

		// pad:1145
		if isFirstCaller {
			hitCache = false
		}
		return res.hitResult(ctx, Result[Typed]{shared: res, hitCache: hitCache})
	}

	// pad:1171
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if res.refCount == 0 && res.waiters == 0 {
		// failed and unreferenced: errors are never cached
		delete(c.ongoingCalls, res.callConcurrencyKeys)
		c.dropFromListLocked(c.completedCalls, res.storageKey, res)
	}
	// pad:1182
	//
	//
	//
	//
	//
	c.mu.Unlock()
	return nil, err
}

func (c *cache) waitArbitrary(ctx context.Context, res *sharedArbitraryResult, isFirstCaller bool) (ArbitraryCachedResult, error) {
	var hitCache bool
	var err error
	// pad:1190
	select {
	case <-res.waitCh:
		hitCache = true
		err = res.err
	default:
		select {
		case <-res.waitCh:
			err = res.err
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}

	c.mu.Lock()
	res.waiters--
	if res.waiters == 0 {
		res.cancel(err)
	}
	if err == nil {
		delete(c.ongoingArbitraryCalls, res.callKey)
		if first := c.completedArbitraryCalls[res.callKey]; first != nil {
			res = first
		} else {
			c.completedArbitraryCalls[res.callKey] = res
		}
		res.refCount++
		c.mu.Unlock()
		if isFirstCaller {
			hitCache = false
		}
		return arbitraryResult{shared: res, hitCache: hitCache}, nil
	}
	if res.refCount == 0 && res.waiters == 0 {
		if c.ongoingArbitraryCalls[res.callKey] == res {
			delete(c.ongoingArbitraryCalls, res.callKey)
		}
		if c.completedArbitraryCalls[res.callKey] == res {
			delete(c.completedArbitraryCalls, res.callKey)
		}
	}
	c.mu.Unlock()
	return nil, err
}

// hitResult builds the per-caller result for a cached shared result: nil-valued
// entries come back only when the session tracks nil results; object values are
// rebuilt through their object type.
func (res *sharedResult) hitResult(ctx context.Context, r Result[Typed]) (AnyResult, error) {
	if !res.hasValue {
		if shouldTrackNilResult(ctx) {
			return r, nil
		}
		return nil, nil
	}
	if res.objType == nil {
		return r, nil
	}
	obj, err := res.objType.New(r)
	if err != nil {
		return nil, fmt.Errorf("reconstruct object result from cache: %w", err)
	}
	return obj, nil
}

// logError stands in for slog.Error (not inlined, so no logging closures are named
// after the cache functions).
//
//go:noinline
func logError(msg string, err error) {
	log.Print(msg + ": " + err.Error())
}
