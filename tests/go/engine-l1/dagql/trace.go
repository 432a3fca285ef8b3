package dagql

// Ground-truth instrumentation for the stand-in engine's test harness. None of this
// exists in the real engine; it only records which path each cache invocation took
// (the harness writes it to the -truth file). It never changes a probed function's
// signature, the layout of a probed struct, or the line of a decision point: the
// per-call record travels in the context, and per-execution facts live in a side
// table keyed by the *sharedResult.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// CallTrace is filled in by the cache for the (*SessionCache).GetOrInitCall invocation
// whose context carries it (WithCallTrace).
type CallTrace struct {
	// Digest of key.ID.
	Digest string
	// Path of the (first) base-cache call: "uncached", "recursive", "hit",
	// "hit_content", "join", "miss"; "rejected" when the session cache refused the
	// call (closed, nil ID) before reaching the base cache.
	Path string
	// Waiters: sharedResult.waiters right after this caller registered (miss 1,
	// join >= 2).
	Waiters int
	// UncachedGoid: the goroutine that ran fn inline (DoNotCache path).
	UncachedGoid int64
	// Frozen: set after the first base call returned successfully; the forced
	// re-insert (second base call) leaves the record alone.
	Frozen bool
	exec   *execInfo
}

// ExecGoid is the id of the goroutine that ran fn for this call's execution (the
// GetOrInitCall.func3 goroutine), or 0.
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

func (t *CallTrace) forKey(key CacheKey) *CallTrace {
	if t != nil && key.ID != nil {
		t.Digest = key.ID.Digest().String()
	}
	return t
}

func (t *CallTrace) freeze() {
	if t != nil {
		t.Frozen = true
	}
}

func (t *CallTrace) setPath(p string) {
	if t != nil && !t.Frozen {
		t.Path = p
	}
}

// markRecursive records the refusal in the condition that leads to it, so the refusal
// itself compiles as the engine's `return nil, ErrCacheRecursiveCall`.
func (t *CallTrace) markRecursive() bool {
	t.setPath("recursive")
	return true
}

func (t *CallTrace) closed(err error) error {
	t.setPath("rejected")
	return err
}

func (t *CallTrace) setUncached() {
	if t == nil || t.Frozen {
		return
	}
	t.Path = "uncached"
	if tracingGoids.Load() {
		t.UncachedGoid = CurrentGoroutineID()
	}
}

// setOngoing records a miss or join; the caller holds cache.mu.
func (t *CallTrace) setOngoing(path string, res *sharedResult, waiters int) {
	if t == nil || t.Frozen {
		return
	}
	t.Path = path
	t.Waiters = waiters
	if v, ok := ongoingExec.Load(res); ok {
		t.exec = v.(*execInfo)
	} else {
		info := &execInfo{}
		ongoingExec.Store(res, info)
		t.exec = info
	}
}

var (
	tracingEnabled atomic.Bool
	tracingGoids   atomic.Bool
	// ongoingExec: *sharedResult -> *execInfo while the execution has waiters.
	ongoingExec sync.Map
)

// EnableTracing turns the ground-truth instrumentation on; with goids, goroutine ids
// (runtime.Stack parsing, about a microsecond) are recorded too.
func EnableTracing(goids bool) {
	tracingEnabled.Store(true)
	tracingGoids.Store(goids)
}

// traceExecStart runs first in the executing goroutine (GetOrInitCall.func3), inside
// the argument list of the fn call, and returns ctx unchanged.
func traceExecStart(res *sharedResult, ctx context.Context) context.Context {
	if tracingGoids.Load() {
		if v, ok := ongoingExec.Load(res); ok {
			v.(*execInfo).goid.Store(CurrentGoroutineID())
		}
	}
	return ctx
}

// traceOngoingDone: the last waiter left (caller holds cache.mu).
func traceOngoingDone(res *sharedResult) {
	if tracingEnabled.Load() {
		ongoingExec.Delete(res)
	}
}

// CloseTrace counts what (*SessionCache).ReleaseAndClose released.
type CloseTrace struct {
	Tracked          int   // results the session tracked (its refs)
	ArbitraryTracked int   // arbitrary results it tracked
	Released         int64 // (*sharedResult).release calls made during the close
	ResultsReleased  int64 // of which brought refCount to 0 (entry removed)
	ArbReleased      int64 // (*sharedArbitraryResult).release calls
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

func traceCloseTracked(ctx context.Context, n, narb int) {
	if tr := closeTraceFrom(ctx); tr != nil {
		tr.Tracked, tr.ArbitraryTracked = n, narb
	}
}

// traceRelease runs at the end of (*sharedResult).release.
func traceRelease(ctx context.Context, res *sharedResult, after int, removed bool) {
	if tr := closeTraceFrom(ctx); tr != nil {
		atomic.AddInt64(&tr.Released, 1)
		if removed {
			atomic.AddInt64(&tr.ResultsReleased, 1)
		}
	}
	if hook := ReleaseHook; hook != nil {
		hook(ctx, res.callKey, after, removed)
	}
}

func traceArbitraryRelease(ctx context.Context, key string, after int) {
	if tr := closeTraceFrom(ctx); tr != nil {
		atomic.AddInt64(&tr.ArbReleased, 1)
	}
	if hook := ArbitraryReleaseHook; hook != nil {
		hook(ctx, key, after)
	}
}

// ReleaseHook, if set, is called by (*sharedResult).release after the decrement.
var ReleaseHook func(ctx context.Context, callKey string, refCountAfter int, removed bool)

// ArbitraryReleaseHook, if set, is called by (*sharedArbitraryResult).release.
var ArbitraryReleaseHook func(ctx context.Context, callKey string, refCountAfter int)

// ArbitraryTrace is the per-invocation record of (*SessionCache).GetOrInitArbitrary.
type ArbitraryTrace struct {
	// Path: "hit", "join", "new".
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
