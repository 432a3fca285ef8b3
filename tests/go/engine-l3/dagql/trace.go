package dagql

// Ground-truth instrumentation for the stand-in's workload (not in the real engine).
// It only records which path each cache invocation took; it changes no probed
// signature, struct layout or fixed line. Per-invocation records travel in the
// context; per-ongoing-call facts live in a side table keyed by *ongoingCall.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// CallTrace is filled in for the GetOrInitCall (or ID-loading lookup) whose context
// carries it. Written on the calling goroutine, except the exec goroutine id.
type CallTrace struct {
	// Path: "uncached", "recursive", "hit", "join", "miss" ("" = validation error).
	Path string
	// HitRoute: "recipe", "digest", "structural" for hits (also load hits).
	HitRoute string
	// Waiters: ongoingCall.waiters right after this caller registered.
	Waiters int
	// UncachedGoid: the goroutine that ran fn inline (DoNotCache).
	UncachedGoid int64
	// Via: which ID-loading lookup hit ("digests": lookupCacheForDigests,
	// "request": lookupCallRequest).
	Via string

	exec *execInfo
}

// ExecGoid is the goroutine that ran fn for this call's ongoingCall (func1), or 0.
func (t *CallTrace) ExecGoid() int64 {
	if t == nil || t.exec == nil {
		return 0
	}
	return t.exec.goid.Load()
}

type execInfo struct{ goid atomic.Int64 }

type callTraceCtxKey struct{}

// WithCallTrace attaches tr to ctx.
func WithCallTrace(ctx context.Context, tr *CallTrace) context.Context {
	return context.WithValue(ctx, callTraceCtxKey{}, tr)
}

func callTraceFrom(ctx context.Context) *CallTrace {
	if !tracingEnabled.Load() {
		return nil
	}
	tr, _ := ctx.Value(callTraceCtxKey{}).(*CallTrace)
	return tr
}

var (
	tracingEnabled atomic.Bool
	tracingGoids   atomic.Bool
	ongoingExec    sync.Map // *ongoingCall -> *execInfo
	sessionStats   sync.Map // session id -> *atomic.Int64 (refs taken)
)

// EnableTracing turns the instrumentation on; with goids, goroutine ids are recorded.
func EnableTracing(goids bool) {
	tracingEnabled.Store(true)
	tracingGoids.Store(goids)
}

func traceUncached(ctx context.Context) {
	if tr := callTraceFrom(ctx); tr != nil {
		tr.Path = "uncached"
		if tracingGoids.Load() {
			tr.UncachedGoid = CurrentGoroutineID()
		}
	}
}

func traceRecursive(ctx context.Context) {
	if tr := callTraceFrom(ctx); tr != nil {
		tr.Path = "recursive"
	}
}

func traceHit(ctx context.Context) {
	if tr := callTraceFrom(ctx); tr != nil {
		tr.Path = "hit"
	}
}

// traceRoute records the hit route of a lookup match (the rule a tracer applies to
// the lookupMatch at the RET of lookupMatchFor*Locked).
func traceRoute(ctx context.Context, m *lookupMatch) {
	tr := callTraceFrom(ctx)
	if tr == nil {
		return
	}
	switch {
	case m.hitRecipeDigest:
		tr.HitRoute = "recipe"
	case m.selfDigest == "":
		tr.HitRoute = "digest"
	default:
		tr.HitRoute = "structural"
	}
}

func traceVia(ctx context.Context, via string) {
	if tr := callTraceFrom(ctx); tr != nil {
		tr.Via = via
	}
}

// traceOngoing records a miss or join (caller holds callsMu).
func traceOngoing(ctx context.Context, path string, oc *ongoingCall) {
	tr := callTraceFrom(ctx)
	if tr == nil {
		return
	}
	tr.Path = path
	tr.Waiters = oc.waiters
	if v, ok := ongoingExec.Load(oc); ok {
		tr.exec = v.(*execInfo)
	} else {
		info := &execInfo{}
		ongoingExec.Store(oc, info)
		tr.exec = info
	}
}

// traceExecStart runs first in the exec goroutine (getOrInitCall.func1).
func traceExecStart(oc *ongoingCall) {
	if !tracingGoids.Load() {
		return
	}
	if v, ok := ongoingExec.Load(oc); ok {
		v.(*execInfo).goid.Store(CurrentGoroutineID())
	}
}

// traceOngoingDone: the last waiter left.
func traceOngoingDone(oc *ongoingCall) {
	if tracingEnabled.Load() {
		ongoingExec.Delete(oc)
	}
}

func traceOngoingDoneIf(lastWaiter bool, oc *ongoingCall) {
	if lastWaiter {
		traceOngoingDone(oc)
	}
}

// traceRefTaken: a result was newly tracked for the session (ownership increment).
func traceRefTaken(sessionID string) {
	if !tracingEnabled.Load() {
		return
	}
	v, ok := sessionStats.Load(sessionID)
	if !ok {
		v, _ = sessionStats.LoadOrStore(sessionID, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// SessionRefsTaken returns (and forgets) the number of results newly tracked for
// the session.
func SessionRefsTaken(sessionID string) int64 {
	v, ok := sessionStats.LoadAndDelete(sessionID)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// CloseTrace counts what ReleaseSession did (ctx of removeDaggerSession).
type CloseTrace struct {
	Decrements int
	Underflows int
	Collected  int
}

type closeTraceCtxKey struct{}

// WithCloseTrace attaches tr to ctx.
func WithCloseTrace(ctx context.Context, tr *CloseTrace) context.Context {
	return context.WithValue(ctx, closeTraceCtxKey{}, tr)
}

func closeTraceFrom(ctx context.Context) *CloseTrace {
	tr, _ := ctx.Value(closeTraceCtxKey{}).(*CloseTrace)
	return tr
}

func (t *CloseTrace) noteDecrement(res *sharedResult, err error) {
	if t == nil {
		return
	}
	t.Decrements++
	if err != nil {
		t.Underflows++
	}
}

func traceCollected(ctx context.Context, res *sharedResult) {
	if t := closeTraceFrom(ctx); t != nil {
		t.Collected++
	}
}

// ArbitraryTrace records the path of one GetOrInitArbitrary ("hit", "join", "new").
type ArbitraryTrace struct{ Path string }

type arbitraryTraceCtxKey struct{}

// WithArbitraryTrace attaches tr to ctx.
func WithArbitraryTrace(ctx context.Context, tr *ArbitraryTrace) context.Context {
	return context.WithValue(ctx, arbitraryTraceCtxKey{}, tr)
}

func traceArbitrary(ctx context.Context, path string) {
	if tr, ok := ctx.Value(arbitraryTraceCtxKey{}).(*ArbitraryTrace); ok && tr != nil {
		tr.Path = path
	}
}

// CurrentGoroutineID parses "goroutine N [" from runtime.Stack.
func CurrentGoroutineID() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	b := buf[:n]
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var id int64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}
