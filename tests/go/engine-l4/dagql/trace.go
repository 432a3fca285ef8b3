package dagql

// Ground-truth hooks for the stand-in's workload (not in the real engine). They travel
// in the context or are package-level funcs set once before the workload starts, so no
// probed signature or struct offset changes.

import (
	"context"
	"sync"
)

// CallTrace records what one GetOrInitCall invocation did.
type CallTrace struct {
	Path     string // "uncached", "hit", "join", "miss" ("" before a decision)
	HitRoute string // route of the hit (lookups)
	Waiters  int    // oc.waiters right after this caller registered
	// Leader is the trace of the caller that created the ongoing call this one
	// executed or joined (itself for a miss); its fn records ExecGoid there.
	Leader   *CallTrace
	ExecGoid int64
	ResultID uint64
}

type callTraceKey struct{}

// WithCallTrace attaches tr to ctx (the nearest one wins).
func WithCallTrace(ctx context.Context, tr *CallTrace) context.Context {
	return context.WithValue(ctx, callTraceKey{}, tr)
}

// CallTraceFrom returns the nearest trace in ctx (a resolver uses it to record the
// goroutine that runs it, and its call's digest for nested calls).
func CallTraceFrom(ctx context.Context) *CallTrace {
	return callTraceFrom(ctx)
}

func callTraceFrom(ctx context.Context) *CallTrace {
	if !tracing {
		return nil
	}
	tr, _ := ctx.Value(callTraceKey{}).(*CallTrace)
	return tr
}

// tracing is set by EnableTracing before the workload starts.
var tracing bool

// EnableTracing turns the ground-truth hooks on.
func EnableTracing() { tracing = true }

func (tr *CallTrace) setPath(p string) {
	if tr != nil {
		tr.Path = p
	}
}

func (tr *CallTrace) setRoute(r CacheHitRoute) {
	if tr != nil {
		tr.HitRoute = string(r)
	}
}

func (tr *CallTrace) setResult(res AnyResult) {
	if tr != nil {
		tr.ResultID = ResultID(res)
	}
}

var ocLeaders sync.Map // *ongoingCall -> *CallTrace

// leading: called under callsMu when tr's caller created oc.
func (tr *CallTrace) leading(oc *ongoingCall) {
	if tr == nil {
		return
	}
	tr.Path = "miss"
	tr.Waiters = oc.waiters
	tr.Leader = tr
	ocLeaders.Store(oc, tr)
}

// joined: called under callsMu right after tr's caller registered as a waiter.
func (tr *CallTrace) joined(oc *ongoingCall) {
	if tr == nil {
		return
	}
	tr.Path = "join"
	tr.Waiters = oc.waiters
	if l, ok := ocLeaders.Load(oc); ok {
		tr.Leader = l.(*CallTrace)
	}
}

func forgetOngoing(oc *ongoingCall) {
	if tracing {
		ocLeaders.Delete(oc)
	}
}

// Hooks (set once before the workload).
var (
	// SessionTrackedHook: a result became tracked by a session (an ownership
	// increment follows). Called under sessionMu.
	SessionTrackedHook func(sessionID string, resultID uint64)
	// OwnershipHook: an ownership count changed (delta +1/-1) to after; stats is the
	// ReleaseStats of the ReleaseSession in progress on this path, if any.
	OwnershipHook func(stats *ReleaseStats, resultID uint64, delta int, after int64)
)

// ReleaseStats counts what one ReleaseSession did.
type ReleaseStats struct {
	SessionID    string
	Decrements   int64
	Collected    int64
	NegativeIDs  []uint64
	RemainingIDs []uint64
}

type releaseStatsKey struct{}

// WithReleaseStats attaches st to ctx for a ReleaseSession call.
func WithReleaseStats(ctx context.Context, st *ReleaseStats) context.Context {
	return context.WithValue(ctx, releaseStatsKey{}, st)
}

func releaseStatsFrom(ctx context.Context) *ReleaseStats {
	if !tracing || ctx == nil {
		return nil
	}
	st, _ := ctx.Value(releaseStatsKey{}).(*ReleaseStats)
	return st
}

func traceSessionTracked(sessionID string, res *sharedResult) {
	if hook := SessionTrackedHook; hook != nil {
		hook(sessionID, uint64(res.id))
	}
}

func traceOwnership(ctx context.Context, res *sharedResult, delta int) {
	if !tracing {
		return
	}
	st := releaseStatsFrom(ctx)
	if st != nil && delta < 0 {
		st.Decrements++
		if res.incomingOwnershipCount < 0 {
			st.NegativeIDs = append(st.NegativeIDs, uint64(res.id))
		} else if res.incomingOwnershipCount > 0 {
			st.RemainingIDs = append(st.RemainingIDs, uint64(res.id))
		}
	}
	if hook := OwnershipHook; hook != nil {
		hook(st, uint64(res.id), delta, res.incomingOwnershipCount)
	}
}

func traceCollected(ctx context.Context, res *sharedResult) {
	if st := releaseStatsFrom(ctx); st != nil {
		st.Collected++
	}
}

// ArbTrace records which path GetOrInitArbitrary took.
type ArbTrace struct{ Outcome string }

type arbTraceKey struct{}

// WithArbTrace attaches tr to ctx.
func WithArbTrace(ctx context.Context, tr *ArbTrace) context.Context {
	return context.WithValue(ctx, arbTraceKey{}, tr)
}

func arbTraceFrom(ctx context.Context) *ArbTrace {
	if !tracing {
		return nil
	}
	tr, _ := ctx.Value(arbTraceKey{}).(*ArbTrace)
	return tr
}

func (tr *ArbTrace) set(o string) {
	if tr != nil {
		tr.Outcome = o
	}
}

// Debug knobs for the anomalies scenario (not in the real engine): they change an
// ownership count through the real (probed) Locked functions.

// DebugExtraDecrement decrements result id's ownership once, under egraphMu, without
// collecting it (a double release).
func (c *Cache) DebugExtraDecrement(ctx context.Context, id uint64) bool {
	c.egraphMu.Lock()
	defer c.egraphMu.Unlock()
	res := c.resultsByID[sharedResultID(id)]
	if res == nil {
		return false
	}
	_, _ = c.decrementIncomingOwnershipLocked(ctx, res, nil)
	return true
}

// DebugUntrackedIncrement increments result id's ownership without any session
// tracking it (a leaked ownership).
func (c *Cache) DebugUntrackedIncrement(ctx context.Context, id uint64) bool {
	c.egraphMu.Lock()
	defer c.egraphMu.Unlock()
	res := c.resultsByID[sharedResultID(id)]
	if res == nil {
		return false
	}
	c.incrementIncomingOwnershipLocked(ctx, res)
	return true
}

// DebugOwned returns the ids of results still in the cache with their counts.
func (c *Cache) DebugOwned() map[uint64]int64 {
	c.egraphMu.RLock()
	defer c.egraphMu.RUnlock()
	out := make(map[uint64]int64, len(c.resultsByID))
	for id, res := range c.resultsByID {
		out[uint64(id)] = res.incomingOwnershipCount
	}
	return out
}
