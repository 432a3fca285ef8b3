// Package dagql is a stand-in for the Dagger engine's dagql cache at the egraph
// branch commit 5c5fa454fe ("L2"): same function names, signatures (hence register
// assignment), struct layouts and decision-point line numbers as the real engine, with
// the behaviour reduced to what the cache itself does. See layout.go for the asserted
// offsets and cmd/engine for the workload that drives it.
package dagql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/db"
)

// Cache is the base (engine-wide) cache. Sessions use it through a SessionCache; the
// concrete *cache is only ever called through this interface.
type Cache interface {
	// GetOrInitCall returns the cached result for key, or runs fn to produce it.
	GetOrInitCall(
		ctx context.Context,
		key CacheKey,
		fn func(context.Context) (AnyResult, error),
	) (AnyResult, error)

	// GetOrInitArbitrary caches an opaque value by callKey.
	GetOrInitArbitrary(
		ctx context.Context,
		callKey string,
		fn func(context.Context) (any, error),
	) (ArbitraryCachedResult, error)

	// Size is the number of index entries (ongoing + completed + arbitrary).
	Size() int

	// EntryStats breaks Size down.
	EntryStats() CacheEntryStats
}

// pad:60
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

// CacheKey identifies a call in the cache. Size 40: ID 0, ConcurrencyKey 8/16,
// TTL 24, DoNotCache 32 (5 integer words, register-split when passed).
type CacheKey struct {
	// ID is the call's recipe ID; its digest is the call key.
	ID *call.ID

	// ConcurrencyKey: when set, concurrent calls with the same call key and
	// concurrency key share one execution (singleflight).
	ConcurrencyKey string

	// TTL (seconds): cache metadata is persisted in the DB and expires after TTL.
	TTL int64

	// DoNotCache: run fn directly on the caller, without lookup or indexing.
	DoNotCache bool
}

// pad:80
//
//

// CacheEntryStats is a breakdown of Size.
type CacheEntryStats struct {
	OngoingCalls            int
	CompletedCalls          int
	CompletedCallsByContent int
	OngoingArbitrary        int
	CompletedArbitrary      int
}

type cacheStorageKeyCtxKey struct{}

type cacheCallKeysCtxKey struct{}

type sessionIDCtxKey struct{}

// ContextWithSessionID records the client session ID (engine.ClientMetadata in the
// real engine) for the cache: TTL storage keys mix it in until metadata is persisted.
func ContextWithSessionID(ctx context.Context, sessionID string) context.Context {
	return context.WithValue(ctx, sessionIDCtxKey{}, sessionID)
}

// pad:102

func ctxWithStorageKey(ctx context.Context, storageKey string) context.Context {
	return context.WithValue(ctx, cacheStorageKeyCtxKey{}, storageKey)
}

var ErrCacheRecursiveCall = errors.New("recursive call detected")

func sessionIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(sessionIDCtxKey{}).(string)
	return id
}

// ctxCallKeys returns the call keys being executed by the goroutines whose
// executions led to ctx (the enclosing calls).
func ctxCallKeys(ctx context.Context) []string {
	keys, _ := ctx.Value(cacheCallKeysCtxKey{}).([]string)
	return keys
}

func ctxWithCallKey(ctx context.Context, callKey string) context.Context {
	keys := ctxCallKeys(ctx)
	next := make([]string, 0, len(keys)+1)
	next = append(next, keys...)
	next = append(next, callKey)
	return context.WithValue(ctx, cacheCallKeysCtxKey{}, next)
}

// NewCache returns an empty base cache whose TTL metadata lives in queries (may be nil).
func NewCache(ctx context.Context, queries *db.Queries) (Cache, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &cache{
		ongoingCalls:              map[callConcurrencyKeys]*ongoingCall{},
		egraphDigestToClass:       map[string]eqClassID{},
		egraphParents:             []eqClassID{0},
		egraphRanks:               []uint8{0},
		egraphClassTerms:          map[eqClassID]map[egraphTermID]struct{}{},
		egraphTerms:               map[egraphTermID]*egraphTerm{},
		egraphTermsByDigest:       map[string]map[egraphTermID]struct{}{},
		egraphTermsByOutputDigest: map[string]map[egraphTermID]struct{}{},
		egraphResultTerms:         map[*sharedResult]map[egraphTermID]struct{}{},
		nextEgraphClassID:         1,
		nextEgraphTermID:          1,
		ongoingArbitraryCalls:     map[string]*sharedArbitraryResult{},
		completedArbitraryCalls:   map[string]*sharedArbitraryResult{},
		db:                        queries,
	}
	return c, nil
}

// pad:159
//
//
//
//

// cache is the base cache. Size 176.
type cache struct {
	// callsMu guards ongoingCalls and the arbitrary maps.
	callsMu sync.Mutex // 0

	// egraphMu guards the e-graph; taken exclusively even for lookups.
	egraphMu sync.RWMutex // 8

	ongoingCalls map[callConcurrencyKeys]*ongoingCall // 32

	egraphDigestToClass       map[string]eqClassID                        // 40
	egraphParents             []eqClassID                                 // 48
	egraphRanks               []uint8                                     // 72
	egraphClassTerms          map[eqClassID]map[egraphTermID]struct{}     // 96
	egraphTerms               map[egraphTermID]*egraphTerm                // 104
	egraphTermsByDigest       map[string]map[egraphTermID]struct{}        // 112
	egraphTermsByOutputDigest map[string]map[egraphTermID]struct{}        // 120
	egraphResultTerms         map[*sharedResult]map[egraphTermID]struct{} // 128
	nextEgraphClassID         eqClassID                                   // 136
	nextEgraphTermID          egraphTermID                                // 144

	ongoingArbitraryCalls   map[string]*sharedArbitraryResult // 152
	completedArbitraryCalls map[string]*sharedArbitraryResult // 160

	db *db.Queries // 168
}

// pad:191
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

// sharedResult is the cached result shared by every Result returned for it. Size 192.
type sharedResult struct {
	cache *cache // 0

	self     Typed      // 8
	objType  ObjectType // 24
	hasValue bool       // 40

	postCall           PostCallFunc  // 48
	safeToPersistCache bool          // 56
	onRelease          OnReleaseFunc // 64

	outputDigest       call.Digest        // 72
	outputExtraDigests []call.ExtraDigest // 88
	outputEffectIDs    []string           // 112

	resultTermSelf   call.Digest   // 136
	resultTermInputs []call.Digest // 152
	hasResultTerm    bool          // 176

	refCount int64 // 184 (atomic)
}

// ongoingCall is one in-flight execution. Size 144.
type ongoingCall struct {
	callConcurrencyKeys // 0

	persistToDB     func(context.Context) error // 32
	persistToDBOnce sync.Once                   // 40

	initCompletedResultOnce sync.Once // 52
	initCompletedResultErr  error     // 64

	waitCh  chan struct{}           // 80
	cancel  context.CancelCauseFunc // 88
	waiters int                     // 96

	err error         // 104
	val AnyResult     // 120
	res *sharedResult // 136
}

// pad:257
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

func (res *sharedResult) release(ctx context.Context) error {
	if res == nil || res.cache == nil {
		// detached (DoNotCache) results own no cache entry
		return nil
	}
	refs := atomic.AddInt64(&res.refCount, -1)
	if hook := ReleaseHook; hook != nil {
		hook(ctx, string(res.outputDigest), refs)
	}
	if refs < 0 {
		return fmt.Errorf("result %s released more times than acquired (refCount %d)", res.outputDigest, refs)
	}
	if refs > 0 {
		return nil
	}
	c := res.cache
	c.egraphMu.Lock()
	c.removeResultFromEgraphLocked(res)
	c.egraphMu.Unlock()
	if res.onRelease != nil {
		return res.onRelease(ctx)
	}
	return nil
}

// Result is a typed result. Size 24: shared 0, id 8, hitCache 16.
type Result[T Typed] struct {
	shared   *sharedResult
	id       *call.ID
	hitCache bool
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
	if r.shared == nil || r.shared.self == nil {
		return zero
	}
	self, ok := r.shared.self.(T)
	if !ok {
		return zero
	}
	return self
}

func (r Result[T]) Unwrap() Typed {
	if r.shared == nil {
		return nil
	}
	return r.shared.self
}

func (r Result[T]) ID() *call.ID { return r.id }

func (r Result[T]) HitCache() bool { return r.hitCache }

func (r Result[T]) WithID(id *call.ID) AnyResult {
	r.id = id
	return r
}

func (r Result[T]) withHitCache(hit bool) AnyResult {
	r.hitCache = hit
	return r
}

// pad:435
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

// Release drops this result's ref on the shared cached result.
func (r Result[T]) Release(ctx context.Context) error {
	if r.shared == nil {
		return nil
	}
	if err := r.shared.release(ctx); err != nil {
		if r.id != nil {
			return fmt.Errorf("release %s: %w", r.id.Digest(), err)
		}
		return err
	}
	return nil
}

func (r Result[T]) cacheSharedResult() *sharedResult { return r.shared }

// ObjectResult is a result whose value is an object; Result[T] at offset 0.
type ObjectResult[T Typed] struct {
	Result[T]
	class Class[T]
}

func (r ObjectResult[T]) WithID(id *call.ID) AnyResult {
	r.id = id
	return r
}

func (r ObjectResult[T]) withHitCache(hit bool) AnyResult {
	r.hitCache = hit
	return r
}

// ObjectClass returns the result's class.
func (r ObjectResult[T]) ObjectClass() Class[T] { return r.class }

// pad:507
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

func (r ObjectResult[T]) cacheSharedResult() *sharedResult { return r.shared }

// toResult rebuilds a typed result around a cached sharedResult.
func (res *sharedResult) toResult(id *call.ID, hitCache bool) (AnyResult, error) {
	if res.objType != nil {
		return res.objType.New(res, id, hitCache)
	}
	return Result[Typed]{shared: res, id: id, hitCache: hitCache}, nil
}

// pad:534
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

func (c *cache) Size() int {
	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	c.egraphMu.RLock()
	defer c.egraphMu.RUnlock()
	return len(c.ongoingCalls) +
		len(c.egraphResultTerms) +
		len(c.ongoingArbitraryCalls) +
		len(c.completedArbitraryCalls)
}

// pad:549
//
//

func (c *cache) EntryStats() CacheEntryStats {
	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	c.egraphMu.RLock()
	defer c.egraphMu.RUnlock()
	return CacheEntryStats{
		OngoingCalls:       len(c.ongoingCalls),
		CompletedCalls:     len(c.egraphResultTerms),
		OngoingArbitrary:   len(c.ongoingArbitraryCalls),
		CompletedArbitrary: len(c.completedArbitraryCalls),
	}
}

// pad:564

func (c *cache) GetOrInitCall(
	ctx context.Context,
	key CacheKey,
	fn func(context.Context) (AnyResult, error),
) (AnyResult, error) {
	tr := callTraceFrom(ctx)
	if key.ID == nil {
		tr.setPath("nil_id")
		return nil, errors.New("cache key ID is nil")
	}

	if key.DoNotCache {
		// Not cached: run fn synchronously on the caller's goroutine; no lookup,
		// no ongoing call, nothing indexed. The result owns no cache entry.
		tr.setUncached()
		val, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, nil
		}
		var self Typed
		var objType ObjectType
		if sr := val.cacheSharedResult(); sr != nil {
			self, objType = sr.self, sr.objType
		} else {
			self = val.Unwrap()
		}
		detached := newDetachedSharedResult(self, objType)
		id := val.ID()
		if id == nil {
			id = key.ID
		}
		res, err := detached.toResult(id, false)
		if err != nil {
			return nil, err
		}
		return res, nil
	}

	callKey := string(key.ID.Digest())
	if slices.Contains(ctxCallKeys(ctx), callKey) {
		tr.setPath("recursive")
		return nil, ErrCacheRecursiveCall
	}

	// TTL: cache metadata lives in the DB. A call whose metadata is absent or
	// expired gets a storage key that mixes in the session, so it is not shared
	// until its metadata has been persisted (persistToDB, run from wait).
	storageKey := callKey
	var persistToDB func(context.Context) error
	if key.TTL != 0 && c.db != nil {
		tr.markDBRead()
		now := time.Now().Unix()
		row, err := c.db.SelectCall(ctx, callKey)
		switch {
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			tr.setPath("db_error")
			return nil, fmt.Errorf("select cache metadata for %s: %w", callKey, err)
		case err != nil:
			// no metadata yet
			storageKey = string(call.HashString("storage", callKey, sessionIDFromContext(ctx)))
			expiration := now + key.TTL
			// pad:657
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
			persistToDB = func(ctx context.Context) error {
				return c.db.SetExpiration(ctx, db.SetExpirationParams{
					CallKey:    callKey,
					StorageKey: storageKey,
					Expiration: expiration,
				})
			}
		case row.Expiration <= now:
			// expired: new storage key, replace the row only if nobody else did
			prevStorageKey := row.StorageKey
			storageKey = string(call.HashString("storage", callKey, sessionIDFromContext(ctx), prevStorageKey))
			expiration := now + key.TTL
			// pad:679
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
					CallKey:        callKey,
					StorageKey:     storageKey,
					Expiration:     expiration,
					PrevStorageKey: prevStorageKey,
				})
			}
		default:
			storageKey = row.StorageKey
		}
	}
	requestID := key.ID
	if storageKey != callKey {
		requestID = key.ID.WithImplicitInput("cacheStorageKey", storageKey)
		ctx = ctxWithStorageKey(ctx, storageKey)
	}

	c.egraphMu.Lock()
	hitRes, hit, err := c.lookupLocked(ctx, requestID)
	c.egraphMu.Unlock()
	if err != nil {
		tr.setPath("lookup_error")
		return nil, err
	}
	if hit {
		return hitRes, nil
	}

	keys := callConcurrencyKeys{callKey: string(requestID.Digest()), concurrencyKey: key.ConcurrencyKey}
	c.callsMu.Lock()
	if key.ConcurrencyKey != "" {
		if oc, ok := c.ongoingCalls[keys]; ok {
			oc.waiters++
			tr.setOngoing("join", oc)
			c.callsMu.Unlock()
			// pad:716
			res, err := c.wait(ctx, oc, requestID)
			return res, err
		}
	}

	// No second lookup here: a result indexed between the lookup above and this
	// point is simply executed again (cheaper than re-taking egraphMu).
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctxWithCallKey(ctx, callKey)))
	oc := &ongoingCall{
		callConcurrencyKeys: keys,
		persistToDB:         persistToDB,
		waitCh:              make(chan struct{}),
		cancel:              cancel,
		waiters:             1,
	}
	if key.ConcurrencyKey != "" {
		c.ongoingCalls[keys] = oc
	}
	tr.setOngoing("miss", oc)
	c.callsMu.Unlock()

	// pad:741
	//
	//
	//
	go func() {
		defer close(oc.waitCh)
		traceExecStart(oc)
		oc.val, oc.err = fn(callCtx)
	}()

	// pad:749
	//
	return c.wait(ctx, oc, requestID)
}

func (c *cache) wait(ctx context.Context, oc *ongoingCall, requestID *call.ID) (AnyResult, error) {
	var err error
	select {
	case <-oc.waitCh:
		err = oc.err
	case <-ctx.Done():
		err = context.Cause(ctx)
	}

	c.callsMu.Lock()
	oc.waiters--
	lastWaiter := oc.waiters == 0
	if lastWaiter {
		if cur, ok := c.ongoingCalls[oc.callConcurrencyKeys]; ok && cur == oc {
			delete(c.ongoingCalls, oc.callConcurrencyKeys)
		}
		traceOngoingDone(oc)
	}
	c.callsMu.Unlock()

	if err != nil {
		if lastWaiter {
			// nobody is waiting anymore: stop the execution
			oc.cancel(err)
		}
		return nil, err
	}

	// pad:783
	//
	//
	oc.initCompletedResultOnce.Do(func() {
		oc.initCompletedResultErr = c.initCompletedResult(oc, requestID, sessionIDFromContext(ctx))
	})
	if oc.initCompletedResultErr != nil {
		return nil, oc.initCompletedResultErr
	}
	if oc.res == nil {
		return nil, fmt.Errorf("cache wait completed without initialized result")
	}

	atomic.AddInt64(&oc.res.refCount, 1)

	if oc.res.postCall != nil {
		if err := oc.res.postCall(ctx); err != nil {
			if relErr := oc.res.release(context.WithoutCancel(ctx)); relErr != nil {
				return nil, errors.Join(err, relErr)
			}
			return nil, err
		}
	}

	res, err := oc.res.toResult(requestID, false)
	if err != nil {
		if relErr := oc.res.release(context.WithoutCancel(ctx)); relErr != nil {
			return nil, errors.Join(err, relErr)
		}
		return nil, err
	}

	// pad:821
	//
	//
	//
	//
	//
	//
	//
	//
	if oc.persistToDB != nil && oc.res.safeToPersistCache {
		oc.persistToDBOnce.Do(func() {
			callTraceFrom(ctx).markDBWritten()
			// best effort: on failure the metadata simply stays session-scoped
			_ = oc.persistToDB(context.WithoutCancel(ctx))
		})
	}
	return res, nil
}

// pad:844
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

func (c *cache) initCompletedResult(oc *ongoingCall, requestID *call.ID, sessionID string) error {
	if oc.err != nil {
		return oc.err
	}
	res := &sharedResult{
		cache:         c,
		hasResultTerm: true,
	}
	resWasCacheBacked := false
	resultID := requestID
	if oc.val != nil {
		if sr := oc.val.cacheSharedResult(); sr != nil {
			res.self = sr.self
			res.objType = sr.objType
			res.hasValue = sr.hasValue
			res.postCall = sr.postCall
			res.safeToPersistCache = sr.safeToPersistCache
			res.onRelease = sr.onRelease
			resWasCacheBacked = sr.cache == c
		} else {
			res.self = oc.val.Unwrap()
			res.hasValue = res.self != nil
		}
		if id := oc.val.ID(); id != nil {
			resultID = id
		}
	}
	if sessionID != "" && !res.safeToPersistCache && oc.persistToDB != nil {
		// session-scoped result: its metadata stays out of the DB
		oc.persistToDB = nil
	}

	res.outputDigest = resultID.Digest()
	res.outputExtraDigests = resultID.ExtraDigests()
	if requestID != resultID {
		for _, extra := range requestID.ExtraDigests() {
			if !slices.Contains(res.outputExtraDigests, extra) {
				res.outputExtraDigests = append(res.outputExtraDigests, extra)
			}
		}
	}
	res.resultTermSelf = requestID.SelfDigest()
	res.resultTermInputs = requestID.Inputs()
	oc.res = res

	// pad:896
	//
	//
	//
	//
	//
	//
	c.egraphMu.Lock()
	c.indexWaitResultInEgraphLocked(requestID, res.resultTermSelf, res.resultTermInputs, res, resWasCacheBacked)
	c.egraphMu.Unlock()
	return nil
}
