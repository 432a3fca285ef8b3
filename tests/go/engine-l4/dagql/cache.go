package dagql

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dagger/dagger/engine/wcprof"
)

// SpanContext stands in for otel trace.SpanContext v1.43.0 (64 B).
type SpanContext struct {
	traceID    [16]byte
	spanID     [8]byte
	traceFlags byte
	traceState []struct{ Key, Value string }
	remote     bool
}

// Span stands in for an otel trace.Span.
type Span interface {
	IsRecording() bool
	End()
}

type sharedResultID uint64

type eqClassID uint64

// callConcurrencyKeys (32 B): callKey 0/8, concurrencyKey 16/24.
type callConcurrencyKeys struct {
	callKey        string
	concurrencyKey string
}

type cacheContextKey struct {
	callKey string
}

// pad:141
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

var ErrCacheRecursiveCall = errors.New("recursive call detected")

// pad:260
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

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
	if c.sessionResultIDsBySession[sessionID] == nil {
		c.sessionResultIDsBySession[sessionID] = make(map[sharedResultID]struct{})
	}
	if _, found := c.sessionResultIDsBySession[sessionID][shared.id]; !found {
		c.sessionResultIDsBySession[sessionID][shared.id] = struct{}{}
		acquired = true
		traceSessionTracked(sessionID, shared)
	}
	c.sessionMu.Unlock()

	// pad:286
	//
	if acquired {
		c.egraphMu.Lock()
		if c.resultsByID[shared.id] == shared {
			c.incrementIncomingOwnershipLocked(ctx, shared)
		}
		c.egraphMu.Unlock()
	}
	_ = hitCache
}

// pad:730
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (c *Cache) trackSessionArbitrary(sessionID string, res arbitraryResult) {
	if c == nil || sessionID == "" || res.shared == nil {
		return
	}
	c.sessionMu.Lock()
	if c.sessionArbitraryCallKeysBySession == nil {
		c.sessionArbitraryCallKeysBySession = make(map[string]map[string]struct{})
	}
	keys := c.sessionArbitraryCallKeysBySession[sessionID]
	if keys == nil {
		keys = make(map[string]struct{})
		c.sessionArbitraryCallKeysBySession[sessionID] = keys
	}
	_, found := keys[res.shared.callKey]
	if !found {
		keys[res.shared.callKey] = struct{}{}
	}
	c.sessionMu.Unlock()
	if !found {
		c.callsMu.Lock()
		res.shared.ownerSessionCount++
		c.callsMu.Unlock()
	}
}

// pad:760
//
//
//

func (c *Cache) ReleaseSession(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return fmt.Errorf("release session: empty session ID")
	}
	if c == nil {
		return nil
	}
	// pad:768
	c.sessionMu.Lock()
	resultIDs := c.sessionResultIDsBySession[sessionID]
	arbitraryCallKeys := c.sessionArbitraryCallKeysBySession[sessionID]
	delete(c.sessionResultIDsBySession, sessionID)
	delete(c.sessionArbitraryCallKeysBySession, sessionID)
	delete(c.sessionLazySpansBySession, sessionID)
	delete(c.sessionResultInstallSpans, sessionID)
	delete(c.sessionResourcesBySession, sessionID)
	delete(c.sessionVolatileVarsBySession, sessionID)
	delete(c.sessionHandlesBySession, sessionID)
	c.sessionMu.Unlock()
	var (
		rerr       error
		onReleases []OnReleaseFunc
	)
	// pad:784
	c.egraphMu.Lock()
	queue := make([]*sharedResult, 0, len(resultIDs))
	for resultID := range resultIDs {
		shared := c.resultsByID[resultID]
		if shared == nil {
			continue
		}
		var err error
		queue, err = c.decrementIncomingOwnershipLocked(ctx, shared, queue)
		rerr = errors.Join(rerr, err)
	}
	collectReleases, collectErr := c.collectUnownedResultsLocked(context.WithoutCancel(ctx), queue)
	onReleases = append(onReleases, collectReleases...)
	rerr = errors.Join(rerr, collectErr)
	c.egraphMu.Unlock()

	rerr = errors.Join(rerr, runOnReleaseFuncs(context.WithoutCancel(ctx), onReleases))
	for callKey := range arbitraryCallKeys {
		var onRelease OnReleaseFunc
		// pad:807
		//
		//
		//
		c.callsMu.Lock()
		res := c.completedArbitraryCalls[callKey]
		if res == nil {
			res = c.ongoingArbitraryCalls[callKey]
		}
		if res != nil {
			res.ownerSessionCount--
			if res.ownerSessionCount < 0 {
				res.ownerSessionCount = 0
			}
			if res.ownerSessionCount == 0 && res.waiters == 0 {
				if existing := c.ongoingArbitraryCalls[callKey]; existing == res {
					delete(c.ongoingArbitraryCalls, callKey)
				}
				if existing := c.completedArbitraryCalls[callKey]; existing == res {
					delete(c.completedArbitraryCalls, callKey)
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

// pad:866
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (c *Cache) upsertPersistedEdgeLocked(ctx context.Context, res *sharedResult, expiresAtUnix int64, unpruneable bool) {
	if c == nil || res == nil || res.id == 0 {
		return
	}
	if c.persistedEdgesByResult == nil {
		c.persistedEdgesByResult = make(map[sharedResultID]persistedEdge)
	}
	edge := c.persistedEdgesByResult[res.id]
	if expiresAtUnix > edge.expiresAtUnix || edge.expiresAtUnix == 0 {
		edge.expiresAtUnix = expiresAtUnix
	}
	edge.unpruneable = edge.unpruneable || unpruneable
	c.persistedEdgesByResult[res.id] = edge
}

type persistedEdge struct {
	expiresAtUnix int64
	unpruneable   bool
}

// pad:945
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
	traceOwnership(ctx, res, +1)
}

func (c *Cache) enqueueCollectibleResultLocked(queue []*sharedResult, res *sharedResult) []*sharedResult {
	if c == nil || res == nil || res.id == 0 {
		return queue
	}
	if c.resultsByID[res.id] != res || res.incomingOwnershipCount != 0 {
		return queue
	}
	return append(queue, res)
}

// pad:966

//go:noinline
func (c *Cache) decrementIncomingOwnershipLocked(ctx context.Context, res *sharedResult, queue []*sharedResult) ([]*sharedResult, error) {
	if c == nil || res == nil {
		return queue, nil
	}
	res.incomingOwnershipCount--
	traceOwnership(ctx, res, -1)
	if res.incomingOwnershipCount < 0 {
		return queue, fmt.Errorf("incoming ownership underflow for result %d", res.id)
	}
	return c.enqueueCollectibleResultLocked(queue, res), nil
}

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
		if c.resultsByID[res.id] != res {
			continue
		}
		if res.incomingOwnershipCount != 0 {
			continue
		}
		for depID := range res.deps {
			dep := c.resultsByID[depID]
			if dep == nil {
				continue
			}
			var err error
			queue, err = c.decrementIncomingOwnershipLocked(ctx, dep, queue)
			rerr = errors.Join(rerr, err)
		}
		if res.onRelease != nil {
			onReleases = append(onReleases, res.onRelease)
		}
		c.removeResultFromEgraphLocked(ctx, res)
	}
	return onReleases, rerr
}

// pad:1284
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		ongoingCalls:              make(map[callConcurrencyKeys]*ongoingCall),
		resultsByID:               make(map[sharedResultID]*sharedResult),
		resultOutputEqClasses:     make(map[sharedResultID]eqClassID),
		sessionResultIDsBySession: make(map[string]map[sharedResultID]struct{}),
	}
}

// pad:1498
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// sharedResult (472 B): id 0, self 8, isObject 24, objClass 32, resultCallMu 48,
// resultCall 72, payloadMu 80, hasValue 104, onRelease 112, deps 120, depParents 128,
// sessionResourceHandle 136, requiredSessionResources 152, snapshotOwnerLinks 160,
// expiresAtUnix 184, ..., incomingOwnershipCount 264, ..., lazyEvalSpanCtx 408.
type sharedResult struct {
	id       sharedResultID
	self     Typed
	isObject bool
	objClass any

	resultCallMu sync.RWMutex
	resultCall   *ResultCall

	payloadMu  sync.RWMutex
	hasValue   bool
	onRelease  OnReleaseFunc
	deps       map[sharedResultID]struct{}
	depParents map[sharedResultID]struct{}

	sessionResourceHandle    string
	requiredSessionResources *struct{}
	snapshotOwnerLinks       []string

	expiresAtUnix      int64
	persistedEnvelope  *struct{}
	createdAtUnixNano  int64
	lastUsedAtUnixNano int64

	cacheUsageSizeByIdentity map[string]int64
	cacheUsageRecordTypeByID map[string]string

	description string
	recordType  string

	incomingOwnershipCount int64

	attachDepsMu     sync.Mutex
	attachDepsWaitCh chan struct{}
	attachDepsErr    error

	persistDecodeMu     sync.Mutex
	persistDecodeWaitCh chan struct{}
	persistDecodeErr    error

	lazyMu           sync.Mutex
	lazyEval         func(context.Context) error
	lazyEvalComplete bool
	lazyEvalWaitCh   chan struct{}
	lazyEvalCancel   context.CancelCauseFunc
	lazyEvalWaiters  int
	lazyEvalErr      error
	lazyEvalProfOpID uint64
	lazyEvalSpanCtx  SpanContext
}

func (oc *ongoingCall) releaseSharedWorkLease(ctx context.Context) error {
	if oc == nil || oc.releaseSharedWorkLeaseFn == nil {
		return nil
	}
	var err error
	oc.releaseSharedWorkLeaseOnce.Do(func() {
		err = oc.releaseSharedWorkLeaseFn(ctx)
	})
	return err
}

// pad:3288
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
func (c *Cache) Size() int {
	c.callsMu.Lock()
	n := len(c.ongoingCalls) + len(c.ongoingArbitraryCalls) + len(c.completedArbitraryCalls)
	c.callsMu.Unlock()
	c.egraphMu.RLock()
	n += len(c.resultOutputEqClasses)
	c.egraphMu.RUnlock()
	return n
}

// CacheEntryStats (48 B).
type CacheEntryStats struct {
	OngoingCalls            int
	CompletedCalls          int
	RetainedCalls           int
	CompletedCallsByContent int
	OngoingArbitrary        int
	CompletedArbitrary      int
}

// EntryStats returns entry counts.
func (c *Cache) EntryStats() CacheEntryStats {
	var s CacheEntryStats
	c.callsMu.Lock()
	s.OngoingCalls = len(c.ongoingCalls)
	s.OngoingArbitrary = len(c.ongoingArbitraryCalls)
	s.CompletedArbitrary = len(c.completedArbitraryCalls)
	c.callsMu.Unlock()
	c.egraphMu.RLock()
	s.CompletedCalls = len(c.resultOutputEqClasses)
	s.RetainedCalls = len(c.persistedEdgesByResult)
	c.egraphMu.RUnlock()
	return s
}

// pad:3684
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
func (c *Cache) GetOrInitCall(ctx context.Context, sessionID string, resolver TypeResolver, req *CallRequest, fn func(context.Context) (AnyResult, error)) (AnyResult, error) {
	if sessionID == "" {
		return nil, errors.New("get or init call: empty session ID")
	}
	return c.getOrInitCall(ctx, sessionID, resolver, req, fn)
}

// pad:3697
//
//
//

//go:noinline
func (c *Cache) getOrInitCall(ctx context.Context, sessionID string, resolver TypeResolver, req *CallRequest, fn func(context.Context) (AnyResult, error)) (AnyResult, error) {
	// Profiling off (the default): the inner body runs with a nil op.
	// pad:3709
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if !wcprof.Enabled(ctx) || req == nil || req.ResultCall == nil {
		return c.getOrInitCallInner(ctx, sessionID, resolver, req, fn, nil)
	}
	ctx, profOp := wcprof.BeginOp(ctx, wcprof.OpKindCall, profCallClass(req.ResultCall), wcprof.OpOpts{
		ClientID: sessionID,
	})
	res, err := c.getOrInitCallInner(ctx, sessionID, resolver, req, fn, profOp)
	outcome := profOp.OutcomeHint()
	switch {
	case err != nil:
		outcome = wcprof.OutcomeError
	case req.DoNotCache:
		outcome = wcprof.OutcomeDoNotCache
	case res != nil && res.HitCache():
		outcome = wcprof.OutcomeHit
	case outcome == wcprof.OutcomeNone:
		outcome = wcprof.OutcomeOK
	}
	profOp.EndWithResult(outcome, ResultID(res))
	return res, err
}

//go:noinline
func (c *Cache) getOrInitCallInner(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	req *CallRequest,
	fn func(context.Context) (AnyResult, error),
	profOp *wcprof.Op,
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
	tr := callTraceFrom(ctx)
	ev := reqEvidence(req)

	// pad:3754
	if req.DoNotCache {
		// don't cache, don't dedupe calls, just call it
		tr.setPath("uncached")
		if ev != nil {
			// pad:3759
			ev.Outcome = CacheOutcomeUncached
		}
		// pad:3762
		val, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, nil
		}
		if shared := val.cacheSharedResult(); shared != nil && shared.id != 0 {
			touchSharedResultLastUsed(shared, time.Now().UnixNano())
			normalized := Result[Typed]{shared: shared}
			c.trackSessionResult(ctx, sessionID, normalized, false)
			return normalized, nil
		}
		detached := &sharedResult{
			self:       val.Unwrap(),
			resultCall: req.ResultCall.clone(),
			hasValue:   true,
		}
		return Result[Typed]{shared: detached}, nil
	}

	// pad:3811
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
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
	requestInputs := make([]string, 0, len(requestInputRefs))
	for _, ref := range requestInputRefs {
		dig, err := ref.inputDigest(c)
		if err != nil {
			return nil, fmt.Errorf("derive request term input digest: %w", err)
		}
		requestInputs = append(requestInputs, dig)
	}
	if ev != nil {
		ev.SelfDigest = requestSelf
		ev.StructuralInputs = requestInputs
		if pairingDig, pairingErr := req.pairingDigest(c); pairingErr == nil {
			ev.PairingDigest = pairingDig
		}
	}
	callKey := callDigest
	profOp.SetIdent(callKey)
	// pad:3840
	//
	//
	//
	if ctx.Value(cacheContextKey{callKey}) != nil {
		return nil, ErrCacheRecursiveCall
	}
	callConcKeys := callConcurrencyKeys{
		callKey:        callKey,
		concurrencyKey: req.ConcurrencyKey,
	}
	// pad:3848
	hitRes, hit, err := c.lookupCacheForRequest(ctx, sessionID, resolver, req, callDigest, requestSelf, requestInputs, requestInputRefs)
	if err != nil {
		return nil, err
	}
	if hit {
		tr.setPath("hit")
		if ev != nil {
			// the lookup fact only
			// pad:3857
			ev.Outcome = CacheOutcomeHit
		}
		tr.setResult(hitRes)
		// pad:3861
		return hitRes, nil
	}
	// pad:3864
	c.callsMu.Lock()
	if c.ongoingCalls == nil {
		c.ongoingCalls = make(map[callConcurrencyKeys]*ongoingCall)
	}
	if req.ConcurrencyKey != "" {
		// pad:3870
		if oc := c.ongoingCalls[callConcKeys]; oc != nil {
			if req.IsPersistable {
				oc.markPersistable()
			}
			// already an ongoing call
			oc.waiters++
			tr.joined(oc)
			c.callsMu.Unlock()
			if ev != nil {
				// this invocation deduplicated into the concurrent identical call
				//
				// pad:3882
				ev.Outcome = CacheOutcomeJoined
			}
			profOp.SetOutcomeHint(wcprof.OutcomeJoined)
			return c.wait(ctx, sessionID, resolver, oc, req, true)
		}
	}

	// Intentional tradeoff (as in the real engine): no second lookup under callsMu,
	// so a completion racing this point leads to a redundant execution.

	// make a new call with ctx that's only canceled when all caller contexts are canceled
	callCtx := context.WithValue(ctx, cacheContextKey{callKey}, struct{}{})
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(callCtx))
	var execOp *wcprof.Op
	if wcprof.Enabled(ctx) {
		callCtx, execOp = wcprof.BeginOp(callCtx, wcprof.OpKindCallExec, profCallClass(req.ResultCall), wcprof.OpOpts{
			Ident:    callKey,
			ClientID: sessionID,
		})
	}
	var execSpan Span
	if span, ok := otelProfFrom(callCtx); ok && !req.ResultCall.ProfileSkip {
		execSpan = span
	}
	sharedWorkCtx, releaseSharedWorkLease := withOperationLease(callCtx)
	oc := &ongoingCall{
		callConcurrencyKeys:      callConcKeys,
		ttlSeconds:               req.TTL,
		waitCh:                   make(chan struct{}),
		cancel:                   cancel,
		waiters:                  1,
		sharedWorkCtx:            sharedWorkCtx,
		releaseSharedWorkLeaseFn: releaseSharedWorkLease,
		profOpID:                 execOp.ID(),
		profSkip:                 req.ResultCall.ProfileSkip,
	}
	if req.IsPersistable {
		oc.markPersistable()
	}
	tr.leading(oc)

	if req.ConcurrencyKey != "" {
		c.ongoingCalls[callConcKeys] = oc
	}

	// pad:3954
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
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
		val, err := fn(oc.sharedWorkCtx)
		oc.err = err
		oc.val = val
		execOp.EndWithResult(profErrOutcome(err), ResultID(val))
		endProfSpan(execSpan)
		// pad:3962
		c.callsMu.Lock()
		noWaiters := oc.waiters == 0
		c.callsMu.Unlock()
		if err != nil || noWaiters {
			_ = oc.releaseSharedWorkLease(context.WithoutCancel(oc.sharedWorkCtx))
		}
	}()

	c.callsMu.Unlock()
	if ev != nil {
		// The decision fact: the cache chose to execute.
		//
		// pad:3975
		ev.Outcome = CacheOutcomeExecuted
	}
	profOp.SetOutcomeHint(wcprof.OutcomeExecuted)
	return c.wait(ctx, sessionID, resolver, oc, req, false)
}

func (c *Cache) lookupCallRequest(ctx context.Context, sessionID string, resolver TypeResolver, req *CallRequest) (AnyResult, bool, error) {
	if sessionID == "" {
		return nil, false, errors.New("lookup call request: empty session ID")
	}
	if req == nil || req.ResultCall == nil {
		return nil, false, errors.New("lookup call request: nil request")
	}
	callDigest, err := req.deriveRecipeDigest(c)
	if err != nil {
		return nil, false, fmt.Errorf("derive request digest: %w", err)
	}
	requestSelf, requestInputRefs, err := req.selfDigestAndInputRefs(c)
	if err != nil {
		return nil, false, fmt.Errorf("derive request term digests: %w", err)
	}
	requestInputs := make([]string, 0, len(requestInputRefs))
	for _, ref := range requestInputRefs {
		dig, err := ref.inputDigest(c)
		if err != nil {
			return nil, false, fmt.Errorf("derive request term input digest: %w", err)
		}
		requestInputs = append(requestInputs, dig)
	}
	return c.lookupCacheForRequest(ctx, sessionID, resolver, req, callDigest, requestSelf, requestInputs, requestInputRefs)
}

// pad:4024
//
//
//
//
//
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
func (c *Cache) lookupCacheForDigests(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	recipeDigest string,
	extraDigests []ResultCallExtraDigest,
) (AnyResult, bool, error) {
	if sessionID == "" {
		return nil, false, errors.New("lookup cache for digests: empty session ID")
	}
	if recipeDigest == "" && len(extraDigests) == 0 {
		return nil, false, nil
	}
	now := time.Now().Unix()
	var hitShared *sharedResult
	var route CacheHitRoute
	// pad:4041
	c.egraphMu.Lock()
	match := c.lookupMatchForDigestsLocked(recipeDigest, extraDigests, now)
	if match.candidates != nil && len(match.candidates.items) > 0 {
		hitShared = c.selectLookupCandidateForSessionLocked(sessionID, match.candidates)
		route = match.route
	}
	if hitShared == nil {
		c.egraphMu.Unlock()
		return nil, false, nil
	}
	touchSharedResultLastUsed(hitShared, time.Now().UnixNano())
	newlyTracked := false
	c.sessionMu.Lock()
	if c.sessionResultIDsBySession == nil {
		c.sessionResultIDsBySession = make(map[string]map[sharedResultID]struct{})
	}
	if c.sessionResultIDsBySession[sessionID] == nil {
		c.sessionResultIDsBySession[sessionID] = make(map[sharedResultID]struct{})
	}
	if _, ok := c.sessionResultIDsBySession[sessionID][hitShared.id]; !ok {
		c.sessionResultIDsBySession[sessionID][hitShared.id] = struct{}{}
		newlyTracked = true
		traceSessionTracked(sessionID, hitShared)
	}
	c.sessionMu.Unlock()
	if newlyTracked {
		c.incrementIncomingOwnershipLocked(ctx, hitShared)
	}
	c.egraphMu.Unlock()
	callTraceFrom(ctx).setRoute(route)

	hitRes, err := c.ensurePersistedHitValueLoaded(ctx, resolver, Result[Typed]{shared: hitShared, hitCache: true})
	if err != nil {
		return nil, false, err
	}
	return hitRes, true, nil
}

// pad:4115
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
	joined bool,
) (AnyResult, error) {
	var err error
	if joined && !oc.profSkip {
		// a joiner waits on the shared execution (singleflight wait edge)
		_ = oc.profOpID
	}

	// pad:4147
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	select {
	case <-oc.waitCh:
		err = oc.err
	default:
		select {
		case <-oc.waitCh:
			err = oc.err
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}

	if err != nil {
		// pad:4167
		//
		//
		//
		//
		//
		//
		c.callsMu.Lock()
		oc.waiters--
		lastWaiter := oc.waiters == 0
		if lastWaiter {
			if cur := c.ongoingCalls[oc.callConcurrencyKeys]; cur == oc {
				delete(c.ongoingCalls, oc.callConcurrencyKeys)
			}
			forgetOngoing(oc)
			oc.cancel(err)
		}
		releaseHandoff := lastWaiter && oc.handoffHoldActive
		c.callsMu.Unlock()
		if releaseHandoff {
			err = errors.Join(err, c.releaseHandoff(ctx, oc))
		}
		return nil, err
	}

	// pad:4196
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	oc.initCompletedResultOnce.Do(func() {
		defer func() { _ = oc.releaseSharedWorkLease(context.WithoutCancel(oc.sharedWorkCtx)) }()
		oc.initCompletedResultErr = c.initCompletedResult(ctx, resolver, oc, req, sessionID)
	})

	// pad:4225
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	c.callsMu.Lock()
	if cur := c.ongoingCalls[oc.callConcurrencyKeys]; cur == oc {
		delete(c.ongoingCalls, oc.callConcurrencyKeys)
	}
	forgetOngoing(oc)
	c.callsMu.Unlock()

	if oc.initCompletedResultErr != nil {
		// pad:4234
		c.callsMu.Lock()
		oc.waiters--
		lastWaiter := oc.waiters == 0
		c.callsMu.Unlock()
		if lastWaiter && oc.handoffHoldActive {
			_ = c.releaseHandoff(ctx, oc)
		}
		return nil, oc.initCompletedResultErr
	}

	res := Result[Typed]{shared: oc.res, hitCache: joined}
	c.trackSessionResult(ctx, sessionID, res, joined)

	// pad:4267
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	c.callsMu.Lock()
	oc.waiters--
	lastWaiter := oc.waiters == 0
	c.callsMu.Unlock()
	if lastWaiter && oc.handoffHoldActive {
		if err := c.releaseHandoff(ctx, oc); err != nil {
			return nil, err
		}
	}
	callTraceFrom(ctx).setResult(res)
	return res, nil
}

// pad:4307
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
	if oc.val == nil {
		return fmt.Errorf("call %s returned no result", req.Field)
	}
	var onRelease OnReleaseFunc
	if r, ok := oc.val.Unwrap().(OnReleaser); ok {
		onRelease = r.OnRelease
	}
	var contentDigests []string
	if cv, ok := oc.val.Unwrap().(ContentValue); ok && cv.Content != "" {
		contentDigests = append(contentDigests, cv.Content)
	}
	requestSelf, requestInputRefs, err := req.selfDigestAndInputRefs(c)
	if err != nil {
		return err
	}
	requestInputs := make([]string, 0, len(requestInputRefs))
	for _, ref := range requestInputRefs {
		dig, err := ref.inputDigest(c)
		if err != nil {
			return err
		}
		requestInputs = append(requestInputs, dig)
	}
	now := time.Now()

	// pad:4574
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	c.egraphMu.Lock()
	res, err := c.indexWaitResultInEgraphLocked(ctx, oc.callConcurrencyKeys.callKey, req.ResultCall, oc.val.Unwrap(), requestSelf, requestInputs, contentDigests, onRelease, now)
	if err != nil {
		c.egraphMu.Unlock()
		return err
	}
	oc.res = res
	if oc.persistable() {
		c.upsertPersistedEdgeLocked(ctx, res, oc.ttlSeconds, false)
	}
	if !oc.handoffHoldActive {
		c.incrementIncomingOwnershipLocked(ctx, oc.res)
		oc.handoffHoldActive = true
	}
	c.egraphMu.Unlock()
	return nil
}

func profCallClass(call *ResultCall) string {
	if call == nil {
		return ""
	}
	return call.Field
}

func profErrOutcome(err error) wcprof.Outcome {
	if err == nil {
		return wcprof.OutcomeOK
	}
	if errors.Is(err, context.Canceled) {
		return wcprof.OutcomeCanceled
	}
	return wcprof.OutcomeError
}

type otelProfKey struct{}

func otelProfFrom(ctx context.Context) (Span, bool) {
	s, ok := ctx.Value(otelProfKey{}).(Span)
	return s, ok
}

func endProfSpan(span Span) {
	if span != nil {
		span.End()
	}
}

// withOperationLease stands in for the buildkit operation lease of shared work.
func withOperationLease(ctx context.Context) (context.Context, func(context.Context) error) {
	return ctx, func(context.Context) error { return nil }
}
