package dagql

// Ground-truth instrumentation for the stand-in engine's test harness. None of this
// exists in the real engine; it only records which path each cache invocation took
// (the harness writes it to the -truth file). It never changes a probed function's
// signature, the layout of a probed struct, or the line of a decision point: the
// per-call record travels in the context, and per-ongoing-call facts live in a side
// table keyed by the *ongoingCall.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// CallTrace is filled in by the cache for the (*SessionCache).GetOrInitCall invocation
// whose context carries it (WithCallTrace). All fields are written on the calling
// goroutine, except the execution goroutine id (atomic).
type CallTrace struct {
	// Digest of key.ID (empty when the ID is nil).
	Digest string
	// Path taken in the base cache: "nil_id", "uncached", "recursive", "db_error",
	// "lookup_error", "hit", "hit_content", "join", "miss"; "closed" when the session
	// cache rejected the call before the base cache.
	Path string
	// DBRead: db.(*Queries).SelectCall ran for this call (TTL path).
	DBRead bool
	// DBWritten: the persistToDB closure (SetExpiration) ran on this call's behalf
	// (in this invocation's wait.func2).
	DBWritten bool
	// Waiters: ongoingCall.waiters right after this caller registered (miss: 1;
	// join: >= 2).
	Waiters int
	// RefTaken: the session appended the result (it holds one ref);
	// RefReleasedAtOnce: the session was closed meanwhile and released it at once.
	RefTaken          bool
	RefReleasedAtOnce bool
	// ReturnedIDDiffers: the returned result's ID is not the request's key.ID.
	ReturnedIDDiffers bool
	// UncachedGoid: the goroutine that ran fn synchronously (DoNotCache path).
	UncachedGoid int64

	exec *execInfo
}

// ExecGoid is the id of the goroutine that ran fn for this call's ongoingCall (the
// GetOrInitCall.func3 goroutine), or 0 when unknown / not applicable.
func (t *CallTrace) ExecGoid() int64 {
	if t == nil || t.exec == nil {
		return 0
	}
	return t.exec.goid.Load()
}

type execInfo struct {
	goid atomic.Int64
}

type callTraceCtxKey struct{}

// WithCallTrace attaches tr to ctx; the cache fills it in.
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

func (t *CallTrace) setPath(p string) {
	if t != nil {
		t.Path = p
	}
}

func (t *CallTrace) markDBRead() {
	if t != nil {
		t.DBRead = true
	}
}

func (t *CallTrace) markDBWritten() {
	if t != nil {
		t.DBWritten = true
	}
}

func (t *CallTrace) setUncached() {
	if t != nil {
		t.Path = "uncached"
		if tracingGoids.Load() {
			t.UncachedGoid = CurrentGoroutineID()
		}
	}
}

// setOngoing records a miss or join; the caller holds callsMu.
func (t *CallTrace) setOngoing(path string, oc *ongoingCall) {
	if t == nil {
		return
	}
	t.Path = path
	t.Waiters = oc.waiters
	if v, ok := ongoingExec.Load(oc); ok {
		t.exec = v.(*execInfo)
	} else {
		info := &execInfo{}
		ongoingExec.Store(oc, info)
		t.exec = info
	}
}

var (
	tracingEnabled atomic.Bool
	tracingGoids   atomic.Bool
	// ongoingExec: *ongoingCall -> *execInfo, while the ongoing call has waiters.
	ongoingExec sync.Map
)

// EnableTracing turns the ground-truth instrumentation on; with goids, goroutine ids
// (runtime.Stack parsing, about a microsecond) are recorded too.
func EnableTracing(goids bool) {
	tracingEnabled.Store(true)
	tracingGoids.Store(goids)
}

// traceExecStart runs first in the executing goroutine (GetOrInitCall.func3).
func traceExecStart(oc *ongoingCall) {
	if !tracingGoids.Load() {
		return
	}
	if v, ok := ongoingExec.Load(oc); ok {
		v.(*execInfo).goid.Store(CurrentGoroutineID())
	}
}

// traceOngoingDone: the last waiter left (caller holds callsMu).
func traceOngoingDone(oc *ongoingCall) {
	if tracingEnabled.Load() {
		ongoingExec.Delete(oc)
	}
}

// ReleaseHook, if set, is called by (*sharedResult).release after the decrement.
var ReleaseHook func(ctx context.Context, outputDigest string, refCountAfter int64)

// ArbitraryTrace is the per-invocation record of (*SessionCache).GetOrInitArbitrary.
type ArbitraryTrace struct {
	// Path: "hit", "join", "new"; "closed" when rejected by the session cache.
	Path string
}

type arbitraryTraceCtxKey struct{}

// WithArbitraryTrace attaches tr to ctx.
func WithArbitraryTrace(ctx context.Context, tr *ArbitraryTrace) context.Context {
	return context.WithValue(ctx, arbitraryTraceCtxKey{}, tr)
}

func arbitraryTraceFrom(ctx context.Context) *ArbitraryTrace {
	if !tracingEnabled.Load() {
		return nil
	}
	tr, _ := ctx.Value(arbitraryTraceCtxKey{}).(*ArbitraryTrace)
	return tr
}

func (t *ArbitraryTrace) setPath(p string) {
	if t != nil {
		t.Path = p
	}
}

// ArbitraryReleaseHook, if set, is called by (*sharedArbitraryResult).release.
var ArbitraryReleaseHook func(ctx context.Context, callKey string, refCountAfter int)

// CloseTrace counts what (*SessionCache).ReleaseAndClose released.
type CloseTrace struct {
	Released          int
	ArbitraryReleased int
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
