package dagql

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/digest"
)

type (
	sharedResultID uint64
	eqClassID      uint64
	egraphTermID   uint64
)

// NewCache returns an empty engine-wide cache.
func NewCache() *Cache {
	return &Cache{}
}

// pad:91
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

var ErrCacheRecursiveCall = fmt.Errorf("recursive call detected")

type cacheContextKey struct {
	callKey string
}

// callConcurrencyKeys identifies an ongoing call (32 B).
type callConcurrencyKeys struct {
	callKey        string
	concurrencyKey string
}

// pad:210
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) trackSessionResult(ctx context.Context, sessionID string, res AnyResult, hitCache bool) {
	if c == nil || sessionID == "" || res == nil {
		return
	}
	shared := res.cacheSharedResult()
	if shared == nil || shared.id == 0 {
		return
	}

	acquired := false
	c.sessionMu.Lock()
	if c.sessionResultIDsBySession == nil {
		c.sessionResultIDsBySession = make(map[string]map[sharedResultID]struct{})
	}
	ids := c.sessionResultIDsBySession[sessionID]
	if ids == nil {
		ids = make(map[sharedResultID]struct{})
		c.sessionResultIDsBySession[sessionID] = ids
	}
	if _, found := ids[shared.id]; !found {
		ids[shared.id] = struct{}{}
		acquired = true
	}
	c.sessionMu.Unlock()

	if acquired {
		c.egraphMu.Lock()
		if c.resultsByID[shared.id] == shared {
			c.incrementIncomingOwnershipLocked(ctx, shared)
			traceRefTaken(sessionID)
		}
		c.egraphMu.Unlock()
	}
}

// pad:636
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) trackSessionArbitrary(sessionID string, res ArbitraryCachedResult) {
	ar, ok := res.(arbitraryResult)
	if c == nil || sessionID == "" || !ok || ar.shared == nil {
		return
	}

	acquired := false
	c.sessionMu.Lock()
	if c.sessionArbitraryCallKeysBySession == nil {
		c.sessionArbitraryCallKeysBySession = make(map[string]map[string]struct{})
	}
	if c.sessionArbitraryCallKeysBySession[sessionID] == nil {
		c.sessionArbitraryCallKeysBySession[sessionID] = make(map[string]struct{})
	}
	if _, found := c.sessionArbitraryCallKeysBySession[sessionID][ar.shared.callKey]; !found {
		c.sessionArbitraryCallKeysBySession[sessionID][ar.shared.callKey] = struct{}{}
		acquired = true
	}
	c.sessionMu.Unlock()
	if acquired {
		c.callsMu.Lock()
		ar.shared.ownerSessionCount++
		c.callsMu.Unlock()
	}
}

// pad:666
//

//go:noinline
func (c *Cache) ReleaseSession(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return fmt.Errorf("release session: empty session ID")
	}
	if c == nil {
		return nil
	}
	// pad:674
	c.sessionMu.Lock()
	resultIDs := c.sessionResultIDsBySession[sessionID]
	arbitraryKeys := c.sessionArbitraryCallKeysBySession[sessionID]
	delete(c.sessionResultIDsBySession, sessionID)
	delete(c.sessionArbitraryCallKeysBySession, sessionID)
	c.sessionMu.Unlock()

	var (
		rerr       error
		onReleases []OnReleaseFunc
	)
	ct := closeTraceFrom(ctx)
	// pad:690
	//
	//
	//
	c.egraphMu.Lock()
	queue := make([]*sharedResult, 0, len(resultIDs))
	for id := range resultIDs {
		shared := c.resultsByID[id]
		if shared == nil {
			continue
		}
		var err error
		queue, err = c.decrementIncomingOwnershipLocked(ctx, shared, queue)
		ct.noteDecrement(shared, err)
		rerr = errors.Join(rerr, err)
	}
	collected, collectErr := c.collectUnownedResultsLocked(context.WithoutCancel(ctx), queue)
	onReleases = append(onReleases, collected...)
	rerr = errors.Join(rerr, collectErr)
	c.egraphMu.Unlock()

	rerr = errors.Join(rerr, runOnReleaseFuncs(context.WithoutCancel(ctx), onReleases))
	for key := range arbitraryKeys {
		var onRelease OnReleaseFunc
		// pad:713
		//
		//
		c.callsMu.Lock()
		res := c.completedArbitraryCalls[key]
		if res == nil {
			res = c.ongoingArbitraryCalls[key]
		}
		if res != nil {
			res.ownerSessionCount--
			if res.ownerSessionCount < 0 {
				res.ownerSessionCount = 0
			}
			if res.ownerSessionCount == 0 && res.waiters == 0 {
				if c.ongoingArbitraryCalls[key] == res {
					delete(c.ongoingArbitraryCalls, key)
				}
				if c.completedArbitraryCalls[key] == res {
					delete(c.completedArbitraryCalls, key)
				}
				onRelease = res.onRelease
			}
		}
		c.callsMu.Unlock()
		if onRelease != nil {
			rerr = errors.Join(rerr, onRelease(context.WithoutCancel(ctx)))
		}
	}
	return rerr
}

func runOnReleaseFuncs(ctx context.Context, fns []OnReleaseFunc) error {
	var rerr error
	for _, fn := range fns {
		if fn != nil {
			rerr = errors.Join(rerr, fn(ctx))
		}
	}
	return rerr
}

// pad:837
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) incrementIncomingOwnershipLocked(ctx context.Context, res *sharedResult) {
	if c == nil || res == nil {
		return
	}
	res.incomingOwnershipCount++
}

// pad:858
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) decrementIncomingOwnershipLocked(ctx context.Context, res *sharedResult, queue []*sharedResult) ([]*sharedResult, error) {
	if c == nil || res == nil {
		return queue, nil
	}
	if res.incomingOwnershipCount--; res.incomingOwnershipCount < 0 {
		return queue, fmt.Errorf("incoming ownership underflow for result %d", res.id)
	}
	return c.enqueueCollectibleResultLocked(queue, res), nil
}

// pad:871

//go:noinline
func (c *Cache) collectUnownedResultsLocked(ctx context.Context, queue []*sharedResult) ([]OnReleaseFunc, error) {
	if c == nil {
		return nil, nil
	}
	var (
		rerr       error
		onReleases []OnReleaseFunc
	)
	for len(queue) > 0 {
		res := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if c.resultsByID[res.id] != res || res.incomingOwnershipCount != 0 {
			continue
		}
		deps := make([]sharedResultID, 0, len(res.deps))
		for id := range res.deps {
			deps = append(deps, id)
		}
		c.removeResultFromEgraphLocked(ctx, res)
		if res.onRelease != nil {
			onReleases = append(onReleases, res.onRelease)
		}
		res.deps = nil
		for _, id := range deps {
			dep := c.resultsByID[id]
			if dep == nil {
				continue
			}
			var err error
			queue, err = c.decrementIncomingOwnershipLocked(ctx, dep, queue)
			rerr = errors.Join(rerr, err)
		}
	}
	return onReleases, rerr
}

func (c *Cache) enqueueCollectibleResultLocked(queue []*sharedResult, res *sharedResult) []*sharedResult {
	if c == nil || res == nil || res.id == 0 || c.resultsByID[res.id] != res || res.incomingOwnershipCount != 0 {
		return queue
	}
	return append(queue, res)
}

// pad:1177
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// Cache is the engine-wide dagql cache (424 B). Fields the stand-in does not use are
// same-size placeholders so that every offset matches v0.21.8.
type Cache struct {
	callsMu   sync.Mutex   // 0
	sessionMu sync.Mutex   // 8
	egraphMu  sync.RWMutex // 16

	persistenceResetReason string // 40

	ongoingCalls map[callConcurrencyKeys]*ongoingCall // 56

	nextEgraphClassID       eqClassID                            // 64
	eqClassToDigests        map[eqClassID]map[string]struct{}    // 72
	eqClassExtraDigests     map[eqClassID]map[string]struct{}    // 80
	egraphDigestToClass     map[string]eqClassID                 // 88
	egraphParents           []eqClassID                          // 96
	egraphRanks             []uint8                              // 120
	nextEgraphTermID        egraphTermID                         // 144
	egraphTerms             map[egraphTermID]*egraphTerm         // 152
	egraphTermsByTermDigest map[string]map[egraphTermID]struct{} // 160

	nextSharedResultID sharedResultID                   // 168
	resultsByID        map[sharedResultID]*sharedResult // 176

	inputEqClassToTerms   map[eqClassID]map[egraphTermID]struct{}      // 184
	outputEqClassToTerms  map[eqClassID]map[egraphTermID]struct{}      // 192
	resultOutputEqClasses map[sharedResultID]map[eqClassID]struct{}    // 200
	termResults           map[egraphTermID]map[sharedResultID]struct{} // 208
	resultTerms           map[sharedResultID]map[egraphTermID]struct{} // 216
	egraphResultsByDigest map[string]map[sharedResultID]struct{}       // 224

	persistedEdgesByResult map[sharedResultID]struct{} // 232
	termInputProvenance    map[egraphTermID]struct{}   // 240

	ongoingArbitraryCalls   map[string]*sharedArbitraryResult // 248
	completedArbitraryCalls map[string]*sharedArbitraryResult // 256

	sessionResultIDsBySession         map[string]map[sharedResultID]struct{} // 264
	sessionArbitraryCallKeysBySession map[string]map[string]struct{}         // 272
	sessionLazySpansBySession         map[string]struct{}                    // 280
	sessionResultInstallSpans         map[string]struct{}                    // 288
	sessionResourcesBySession         map[string]struct{}                    // 296
	sessionHandlesBySession           map[string]struct{}                    // 304
	sessionVolatileVarsBySession      map[string]struct{}                    // 312

	sqlDB unsafe.Pointer // 320 (*sql.DB)
	pdb   unsafe.Pointer // 328 (*persistdb.Queries)

	traceBootID     string // 336
	traceSeq        uint64 // 352
	traceImportRuns uint64 // 360

	snapshotManager any            // 368
	snapshotGC      unsafe.Pointer // 384

	closeOnce sync.Once // 392
	closeErr  error     // 408
}

// pad:1383
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// sharedResult is one cached result (408 B); id is the engine-wide result identity.
type sharedResult struct {
	id       sharedResultID // 0
	self     Typed          // 8
	isObject bool           // 24
	objClass any            // 32

	resultCallMu sync.RWMutex // 48
	resultCall   *ResultCall  // 72

	payloadMu      sync.RWMutex                // 80
	hasValue       bool                        // 104
	onRelease      OnReleaseFunc               // 112
	deps           map[sharedResultID]struct{} // 120
	depParents     map[sharedResultID]struct{} // 128
	transitiveDeps map[sharedResultID]struct{} // 136

	sessionResourceHandle    string         // 144
	requiredSessionResources unsafe.Pointer // 160
	snapshotOwnerLinks       []string       // 168

	expiresAtUnix      int64          // 192
	persistedEnvelope  unsafe.Pointer // 200
	createdAtUnixNano  int64          // 208
	lastUsedAtUnixNano int64          // 216

	cacheUsageSizeByIdentity map[string]int64  // 224
	cacheUsageRecordTypeByID map[string]string // 232
	description              string            // 240
	recordType               string            // 256

	incomingOwnershipCount int64 // 272

	attachDepsMu     sync.Mutex    // 280
	attachDepsWaitCh chan struct{} // 288
	attachDepsErr    error         // 296

	persistDecodeMu     sync.Mutex    // 312
	persistDecodeWaitCh chan struct{} // 320
	persistDecodeErr    error         // 328

	lazyMu           sync.Mutex                  // 344
	lazyEval         func(context.Context) error // 352
	lazyEvalComplete bool                        // 360
	lazyEvalWaitCh   chan struct{}               // 368
	lazyEvalCancel   context.CancelCauseFunc     // 376
	lazyEvalWaiters  int                         // 384
	lazyEvalErr      error                       // 392
}

// pad:1703
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// ongoingCall is one in-flight execution (184 B).
type ongoingCall struct {
	callConcurrencyKeys // 0 (callKey 0/8, concurrencyKey 16/24)

	isPersistable           bool      // 32
	ttlSeconds              int64     // 40
	initCompletedResultOnce sync.Once // 48
	handoffHoldActive       bool      // 60
	initCompletedResultErr  error     // 64

	waitCh  chan struct{}           // 80
	cancel  context.CancelCauseFunc // 88
	waiters int                     // 96

	err error     // 104
	val AnyResult // 120

	sharedWorkCtx              context.Context             // 136
	releaseSharedWorkLeaseFn   func(context.Context) error // 152
	releaseSharedWorkLeaseOnce sync.Once                   // 160

	res *sharedResult // 176
}

func (oc *ongoingCall) releaseSharedWorkLease(ctx context.Context) error {
	var err error
	oc.releaseSharedWorkLeaseOnce.Do(func() {
		if oc.releaseSharedWorkLeaseFn != nil {
			err = oc.releaseSharedWorkLeaseFn(ctx)
		}
	})
	return err
}

// pad:2090
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// Result is a (possibly cache-backed) value: shared 0, hitCache 8.
type Result[T Typed] struct {
	shared          *sharedResult
	hitCache        bool
	derefView       bool
	nullableWrapped bool
}

// pad:3091
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// Size is the dagger_dagql_cache_entries gauge.
//
//go:noinline
func (c *Cache) Size() int {
	c.callsMu.Lock()
	ongoing := len(c.ongoingCalls)
	ongoingArbitrary := len(c.ongoingArbitraryCalls)
	completedArbitrary := len(c.completedArbitraryCalls)
	c.callsMu.Unlock()

	c.egraphMu.RLock()
	completed := len(c.resultOutputEqClasses)
	c.egraphMu.RUnlock()

	return ongoing + completed + ongoingArbitrary + completedArbitrary
}

// pad:3459
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) GetOrInitCall(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	req *CallRequest,
	fn func(context.Context) (AnyResult, error),
) (AnyResult, error) {
	if sessionID == "" {
		return nil, errors.New("get or init call: empty session ID")
	}
	return c.getOrInitCall(ctx, sessionID, resolver, req, fn)
}

//go:noinline
func (c *Cache) getOrInitCall(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	req *CallRequest,
	fn func(context.Context) (AnyResult, error),
) (AnyResult, error) {
	if sessionID == "" {
		return nil, errors.New("get or init call: empty session ID")
	}
	if resolver == nil {
		return nil, errors.New("get or init call: type resolver is nil")
	}
	if req == nil || req.ResultCall == nil {
		return nil, fmt.Errorf("call request is nil")
	}
	ctx = ContextWithCall(ctx, req.ResultCall)
	if req.DoNotCache {
		traceUncached(ctx)
		val, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, nil
		}
		if shared := val.cacheSharedResult(); shared != nil && shared.id != 0 {
			touchSharedResultLastUsed(shared, time.Now().UnixNano())
			attached := Result[Typed]{shared: shared}
			c.trackSessionResult(ctx, sessionID, attached, false)
			return attached, nil
		}
		detached := &sharedResult{
			self:       val.Unwrap(),
			resultCall: req.ResultCall,
			hasValue:   true,
		}
		return Result[Typed]{shared: detached}, nil
	}

	// pad:3543
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	callDigest, err := req.deriveRecipeDigest(c)
	if err != nil {
		return nil, fmt.Errorf("derive request digest: %w", err)
	}
	requestSelf, requestInputRefs, err := req.selfDigestAndInputRefs(c)
	if err != nil {
		return nil, fmt.Errorf("derive request term digests: %w", err)
	}
	requestInputs := make([]digest.Digest, 0, len(requestInputRefs))
	for _, ref := range requestInputRefs {
		dig, err := ref.inputDigest(c)
		if err != nil {
			return nil, fmt.Errorf("derive request term input digest: %w", err)
		}
		requestInputs = append(requestInputs, dig)
	}
	callKey := callDigest.String()
	if ctx.Value(cacheContextKey{callKey}) != nil {
		traceRecursive(ctx)
		return nil, ErrCacheRecursiveCall
	}
	callConcKeys := callConcurrencyKeys{
		callKey:        callKey,
		concurrencyKey: req.ConcurrencyKey,
	}
	hitRes, hit, err := c.lookupCacheForRequest(ctx, sessionID, resolver, req, callDigest, requestSelf, requestInputs, requestInputRefs)
	if err != nil {
		return nil, err
	}
	if hit {
		traceHit(ctx)
		return hitRes, nil
	}
	c.callsMu.Lock()
	if c.ongoingCalls == nil {
		c.ongoingCalls = make(map[callConcurrencyKeys]*ongoingCall)
	}

	if req.ConcurrencyKey != "" {
		if oc := c.ongoingCalls[callConcKeys]; oc != nil {
			oc.isPersistable = oc.isPersistable || req.IsPersistable
			oc.waiters++
			traceOngoing(ctx, "join", oc)
			c.callsMu.Unlock()
			// pad:3591
			//
			//
			//
			return c.wait(ctx, sessionID, resolver, oc, req)
		}
	}

	callCtx := context.WithValue(ctx, cacheContextKey{callKey}, struct{}{})
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(callCtx))
	oc := &ongoingCall{
		callConcurrencyKeys: callConcKeys,
		isPersistable:       req.IsPersistable,
		ttlSeconds:          req.TTL,
		waitCh:              make(chan struct{}),
		cancel:              cancel,
		waiters:             1,
		sharedWorkCtx:       callCtx,
	}
	traceOngoing(ctx, "miss", oc)

	if req.ConcurrencyKey != "" {
		c.ongoingCalls[callConcKeys] = oc
	}

	// pad:3624
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	go func() {
		defer close(oc.waitCh)
		traceExecStart(oc)
		val, err := fn(oc.sharedWorkCtx)
		oc.err = err
		oc.val = val
		c.callsMu.Lock()
		noWaiters := oc.waiters == 0
		c.callsMu.Unlock()
		if err != nil || noWaiters {
			_ = oc.releaseSharedWorkLease(context.WithoutCancel(oc.sharedWorkCtx))
		}
	}()
	c.callsMu.Unlock()
	// pad:3639
	return c.wait(ctx, sessionID, resolver, oc, req)
}

func (c *Cache) lookupCallRequest(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	req *CallRequest,
) (AnyResult, bool, error) {
	if sessionID == "" {
		return nil, false, errors.New("lookup call request: empty session ID")
	}
	if resolver == nil {
		return nil, false, errors.New("lookup call request: type resolver is nil")
	}
	if req == nil || req.ResultCall == nil {
		return nil, false, fmt.Errorf("call request is nil")
	}
	callDigest, err := req.deriveRecipeDigest(c)
	if err != nil {
		return nil, false, fmt.Errorf("derive request digest: %w", err)
	}
	requestSelf, requestInputRefs, err := req.selfDigestAndInputRefs(c)
	if err != nil {
		return nil, false, fmt.Errorf("derive request term digests: %w", err)
	}
	requestInputs := make([]digest.Digest, 0, len(requestInputRefs))
	for _, ref := range requestInputRefs {
		dig, err := ref.inputDigest(c)
		if err != nil {
			return nil, false, fmt.Errorf("derive request term input digest: %w", err)
		}
		requestInputs = append(requestInputs, dig)
	}

	hitRes, hit, err := c.lookupCacheForRequest(ctx, sessionID, resolver, req, callDigest, requestSelf, requestInputs, requestInputRefs)
	if err != nil {
		return nil, false, err
	}
	if !hit {
		return nil, false, nil
	}
	return hitRes, true, nil
}

//go:noinline
func (c *Cache) lookupCacheForDigests(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	recipeDigest digest.Digest,
	extraDigests []call.ExtraDigest,
) (AnyResult, bool, error) {
	if sessionID == "" {
		return nil, false, errors.New("lookup cache for digests: empty session ID")
	}
	if resolver == nil {
		return nil, false, errors.New("lookup cache for digests: type resolver is nil")
	}
	if recipeDigest == "" {
		return nil, false, nil
	}
	// pad:3702
	c.egraphMu.Lock()
	now := time.Now()
	match := c.lookupMatchForDigestsLocked(recipeDigest, extraDigests, now.Unix())
	hitRes := c.selectLookupCandidateForSessionLocked(sessionID, match.candidates)
	if hitRes == nil {
		c.egraphMu.Unlock()
		return nil, false, nil
	}
	traceRoute(ctx, &match)
	touchSharedResultLastUsed(hitRes, now.UnixNano())
	retRes := Result[Typed]{shared: hitRes, hitCache: true}

	alreadyTracked := false
	c.sessionMu.Lock()
	if c.sessionResultIDsBySession == nil {
		c.sessionResultIDsBySession = make(map[string]map[sharedResultID]struct{})
	}
	ids := c.sessionResultIDsBySession[sessionID]
	if ids == nil {
		ids = make(map[sharedResultID]struct{})
		c.sessionResultIDsBySession[sessionID] = ids
	}
	if _, found := ids[hitRes.id]; found {
		alreadyTracked = true
	} else {
		ids[hitRes.id] = struct{}{}
		c.incrementIncomingOwnershipLocked(ctx, hitRes)
		traceRefTaken(sessionID)
	}
	c.sessionMu.Unlock()
	c.egraphMu.Unlock()
	_ = alreadyTracked

	loaded, err := c.ensurePersistedHitValueLoaded(ctx, resolver, retRes)
	if err != nil {
		return nil, false, err
	}
	return loaded, true, nil
}

// pad:3775
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) wait(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	oc *ongoingCall,
	req *CallRequest,
) (AnyResult, error) {
	var (
		completionErr error
		canceledErr   error
		completed     bool
	)
	select {
	case <-oc.waitCh:
		completed = true
	case <-ctx.Done():
		canceledErr = context.Cause(ctx)
	}
	if completed {
		completionErr = oc.err
	}

	if !completed {
		c.callsMu.Lock()
		oc.waiters--
		lastWaiter := oc.waiters == 0
		releaseHandoff := lastWaiter && oc.handoffHoldActive
		if lastWaiter {
			delete(c.ongoingCalls, oc.callConcurrencyKeys)
			oc.cancel(canceledErr)
			traceOngoingDone(oc)
		}
		c.callsMu.Unlock()
		if releaseHandoff && oc.res != nil {
			c.egraphMu.Lock()
			queue, _ := c.decrementIncomingOwnershipLocked(ctx, oc.res, nil)
			onReleases, _ := c.collectUnownedResultsLocked(context.WithoutCancel(ctx), queue)
			c.egraphMu.Unlock()
			oc.handoffHoldActive = false
			_ = runOnReleaseFuncs(context.WithoutCancel(ctx), onReleases)
		}
		return nil, canceledErr
	}

	if completionErr != nil {
		// pad:3823
		//
		//
		c.callsMu.Lock()
		oc.waiters--
		if oc.waiters == 0 {
			delete(c.ongoingCalls, oc.callConcurrencyKeys)
			oc.cancel(completionErr)
			traceOngoingDone(oc)
		}
		c.callsMu.Unlock()
		return nil, completionErr
	}
	// pad:3834
	oc.initCompletedResultOnce.Do(func() {
		defer func() {
			_ = oc.releaseSharedWorkLease(context.WithoutCancel(oc.sharedWorkCtx))
		}()
		oc.initCompletedResultErr = c.initCompletedResult(context.WithoutCancel(oc.sharedWorkCtx), resolver, oc, req, sessionID)
		c.callsMu.Lock()
		delete(c.ongoingCalls, oc.callConcurrencyKeys)
		c.callsMu.Unlock()
	})
	if oc.initCompletedResultErr != nil || oc.res == nil {
		c.callsMu.Lock()
		oc.waiters--
		lastWaiter := oc.waiters == 0
		c.callsMu.Unlock()
		if lastWaiter && oc.handoffHoldActive {
			c.egraphMu.Lock()
			queue, _ := c.decrementIncomingOwnershipLocked(ctx, oc.res, nil)
			onReleases, _ := c.collectUnownedResultsLocked(context.WithoutCancel(ctx), queue)
			c.egraphMu.Unlock()
			oc.handoffHoldActive = false
			_ = runOnReleaseFuncs(context.WithoutCancel(ctx), onReleases)
		}
		traceOngoingDoneIf(lastWaiter, oc)
		if oc.initCompletedResultErr != nil {
			return nil, oc.initCompletedResultErr
		}
		return nil, fmt.Errorf("cache wait completed without initialized result")
	}

	touchSharedResultLastUsed(oc.res, time.Now().UnixNano())
	retRes := Result[Typed]{shared: oc.res, hitCache: false}
	c.trackSessionResult(ctx, sessionID, retRes, false)
	c.callsMu.Lock()
	oc.waiters--
	lastWaiter := oc.waiters == 0
	c.callsMu.Unlock()
	if lastWaiter && oc.handoffHoldActive {
		c.egraphMu.Lock()
		queue, _ := c.decrementIncomingOwnershipLocked(ctx, oc.res, nil)
		onReleases, _ := c.collectUnownedResultsLocked(context.WithoutCancel(ctx), queue)
		c.egraphMu.Unlock()
		oc.handoffHoldActive = false
		_ = runOnReleaseFuncs(context.WithoutCancel(ctx), onReleases)
	}
	traceOngoingDoneIf(lastWaiter, oc)

	ret, err := c.ensurePersistedHitValueLoaded(ctx, resolver, retRes)
	if err != nil {
		return nil, fmt.Errorf("wait: normalize returned result: %w", err)
	}
	return ret, nil
}

// pad:3912
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) initCompletedResult(ctx context.Context, resolver TypeResolver, oc *ongoingCall, req *CallRequest, sessionID string) error {
	if req == nil || req.ResultCall == nil {
		return fmt.Errorf("call request is nil")
	}
	if oc.val == nil {
		return nil
	}
	now := time.Now()
	requestDigest, err := req.deriveRecipeDigest(c)
	if err != nil {
		return err
	}
	requestSelf, requestInputRefs, err := req.selfDigestAndInputRefs(c)
	if err != nil {
		return err
	}
	requestInputs := make([]digest.Digest, 0, len(requestInputRefs))
	for _, ref := range requestInputRefs {
		dig, err := ref.inputDigest(c)
		if err != nil {
			return err
		}
		requestInputs = append(requestInputs, dig)
	}

	c.egraphMu.Lock()
	if shared := oc.val.cacheSharedResult(); shared != nil && shared.id != 0 && c.resultsByID[shared.id] == shared {
		oc.res = shared
	} else if existing := c.existingResultForDigestLocked(requestDigest, now.Unix()); existing != nil {
		// redundant execution: adopt the canonical result
		oc.res = existing
	} else {
		oc.res = &sharedResult{
			self:              oc.val.Unwrap(),
			resultCall:        req.ResultCall,
			hasValue:          true,
			createdAtUnixNano: now.UnixNano(),
		}
		if onReleaser, ok := oc.val.Unwrap().(OnReleaser); ok {
			oc.res.onRelease = onReleaser.OnRelease
		}
		if oc.ttlSeconds > 0 {
			oc.res.expiresAtUnix = now.Unix() + oc.ttlSeconds
		}
	}
	if err := c.indexWaitResultInEgraphLocked(ctx, req.ResultCall, requestDigest, requestSelf, requestInputs, oc.res); err != nil {
		c.egraphMu.Unlock()
		return err
	}
	if !oc.handoffHoldActive {
		c.incrementIncomingOwnershipLocked(ctx, oc.res)
		oc.handoffHoldActive = true
	}
	c.egraphMu.Unlock()
	return nil
}
