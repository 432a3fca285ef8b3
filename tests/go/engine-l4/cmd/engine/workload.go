package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dagger/dagger/core"
	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine/server"
)

// env is the workload's state: the server, the truth writer and the counters of the
// end record.
type env struct {
	srv      *server.Server
	cache    *dagql.Cache
	truth    *truthWriter
	scenario string
	seed     int64

	calls     atomic.Int64
	sessionsN atomic.Int64
	sessSeq   atomic.Int64
	syncN     atomic.Int64
	conflicts atomic.Int64

	mu       sync.Mutex
	outcomes map[string]int
	changes  map[string]int

	// refsTaken: session -> results newly tracked (ownership increments)
	refsTaken sync.Map // string -> *atomic.Int64
	// lastReleaser: result id -> session whose ReleaseSession last decremented it
	// while it stayed owned
	lastReleaser  sync.Map // uint64 -> string
	reportedOwned sync.Map // uint64 -> true
	// goroutinesNoted: goroutines whose goroutine record is written
	goroutinesNoted sync.Map // int64 -> true
}

type sessState struct {
	id   string
	sess *server.Session
	ctx  context.Context
}

type resolver struct{}

func (resolver) ResolveType(name string) (string, bool) { return name, true }

func newEnv(srv *server.Server, truth *truthWriter, scenario string, seed int64) *env {
	return &env{
		srv:      srv,
		cache:    srv.Cache(),
		truth:    truth,
		scenario: scenario,
		seed:     seed,
		outcomes: map[string]int{},
		changes:  map[string]int{},
	}
}

func (e *env) installHooks() {
	dagql.EnableTracing()
	if !e.truth.enabled() {
		return
	}
	dagql.SessionTrackedHook = func(sessionID string, resultID uint64) {
		e.takenCounter(sessionID).Add(1)
	}
	installFilesyncHooks(e)
}

func (e *env) takenCounter(sessionID string) *atomic.Int64 {
	if v, ok := e.refsTaken.Load(sessionID); ok {
		return v.(*atomic.Int64)
	}
	v, _ := e.refsTaken.LoadOrStore(sessionID, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// goid returns the current goroutine's id (from runtime.Stack).
func goid() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	b := bytes.TrimPrefix(buf[:n], []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseInt(string(b), 10, 64)
	return id
}

func (e *env) goid() int64 {
	if !e.truth.enabled() {
		return 0
	}
	return goid()
}

// noteGoroutine writes, once per goroutine, the first user function of goroutine g (the
// current one): of its stack as the runtime prints it, the outermost function that is
// neither the runtime's nor the wrapper a `go f(x)` statement compiles to
// (pkg.caller.gowrapN).
func (e *env) noteGoroutine(g int64) {
	if !e.truth.enabled() {
		return
	}
	if _, noted := e.goroutinesNoted.LoadOrStore(g, true); noted {
		return
	}
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	first := ""
	for _, line := range bytes.Split(buf, []byte("\n"))[1:] {
		// Frames are "pkg.Func(args)" lines, each followed by a tab-indented place.
		if len(line) == 0 || line[0] == '\t' || bytes.HasPrefix(line, []byte("created by ")) || bytes.HasPrefix(line, []byte("...")) {
			continue
		}
		f := string(line)
		if i := strings.LastIndexByte(f, '('); i > 0 {
			f = f[:i]
		}
		last := f[strings.LastIndexByte(f, '.')+1:]
		if strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "runtime/") || strings.HasPrefix(last, "gowrap") {
			continue
		}
		first = f
	}
	if first != "" {
		e.truth.write(goroutineRec{Kind: "goroutine", Goid: g, Func: first})
	}
}

func (e *env) openSession() *sessState {
	id := fmt.Sprintf("sess-%d", e.sessSeq.Add(1))
	s, err := e.srv.OpenSession(id, "client-"+id)
	if err != nil {
		panic(err)
	}
	e.sessionsN.Add(1)
	if e.truth.enabled() {
		e.truth.write(sessionOpenRec{Kind: "session_open", Session: id, Goid: goid(), TNs: nanotime()})
	}
	return &sessState{id: id, sess: s, ctx: context.Background()}
}

func (e *env) closeSession(ss *sessState) {
	st := &dagql.ReleaseStats{SessionID: ss.id}
	ctx := dagql.WithReleaseStats(ss.ctx, st)
	_ = e.srv.CloseSession(ctx, ss.sess) // an ownership underflow is reported as an error
	e.recordRelease(ss.id, st)
}

// releaseUnknown releases a session id that never made a call (anomalies).
func (e *env) releaseUnknown(id string) {
	st := &dagql.ReleaseStats{SessionID: id}
	_ = e.cache.ReleaseSession(dagql.WithReleaseStats(context.Background(), st), id)
	e.recordRelease(id, st)
	e.truth.write(anomalyRec{Kind: "anomaly", Type: "unknown_session_release", Session: strp(id)})
}

func (e *env) recordRelease(id string, st *dagql.ReleaseStats) {
	if !e.truth.enabled() {
		return
	}
	taken := e.takenCounter(id).Load()
	e.truth.write(sessionCloseRec{
		Kind: "session_close", Session: id, Goid: goid(),
		RefsTaken: taken, RefsReleased: st.Decrements, ResultsReleased: st.Collected,
		Leaked: taken > st.Decrements, TNs: nanotime(),
	})
	for _, rid := range st.NegativeIDs {
		e.truth.write(anomalyRec{Kind: "anomaly", Type: "negative_count", Session: strp(id), ResultID: u64p(rid)})
	}
	for _, rid := range st.RemainingIDs {
		e.lastReleaser.Store(rid, id)
	}
}

// reportOwnedAfterRelease: after every session was released, results still owned
// (count > 0) are owned by no session.
func (e *env) reportOwnedAfterRelease() {
	if !e.truth.enabled() {
		return
	}
	for rid, count := range e.cache.DebugOwned() {
		if count <= 0 {
			continue
		}
		if _, dup := e.reportedOwned.LoadOrStore(rid, true); dup {
			continue
		}
		rec := anomalyRec{Kind: "anomaly", Type: "owned_after_release", ResultID: u64p(rid)}
		if s, ok := e.lastReleaser.Load(rid); ok {
			rec.Session = strp(s.(string))
		}
		e.truth.write(rec)
	}
}

type parentFrameKey struct{}

// resolverFn wraps a resolver body: it records the goroutine that runs it (the exec
// goroutine of a miss, the caller of an uncached call).
func (e *env) resolverFn(body func(ctx context.Context) (dagql.AnyResult, error)) func(context.Context) (dagql.AnyResult, error) {
	return func(ctx context.Context) (dagql.AnyResult, error) {
		if e.truth.enabled() {
			g := goid()
			e.noteGoroutine(g)
			if tr := dagql.CallTraceFrom(ctx); tr != nil {
				tr.ExecGoid = g
			}
		}
		return body(ctx)
	}
}

// nested says whether ctx is a resolver's (the call is made while another runs).
func nested(ctx context.Context) bool {
	_, ok := ctx.Value(parentFrameKey{}).(*dagql.ResultCall)
	return ok
}

// getOrInit calls the cache the two ways the engine's dagql does: a top-level call like
// ObjectResult.call (objects.go: `res, err = cache.GetOrInitCall(...)`, then the error
// and nil checks), a nested one like Result.NthValue (cache.go: `return
// cache.GetOrInitCall(...)`, a call in tail position). The tracer reads the return of the
// first at the jump after the call, of the second at the caller's RET.
//
// viaInterface (-via-interface): top-level calls go through viaCache.
var viaInterface bool

// viaCache is the cache as a cacheCaller, set at run time so that the compiler cannot
// turn calls through it back into direct ones.
var viaCache cacheCaller

// cacheCaller holds GetOrInitCall as an interface method: a call through it is an
// indirect CALL, with no call site in the code for the tracer to find.
type cacheCaller interface {
	GetOrInitCall(ctx context.Context, sessionID string, resolver dagql.TypeResolver, req *dagql.CallRequest, fn func(context.Context) (dagql.AnyResult, error)) (dagql.AnyResult, error)
}

//go:noinline
func (e *env) getOrInit(ctx context.Context, ss *sessState, req *dagql.CallRequest, fn func(context.Context) (dagql.AnyResult, error), nested bool) (dagql.AnyResult, error) {
	if nested {
		return e.nthValueLike(ctx, ss, req, fn)
	}
	if !viaInterface {
		return e.objectsCall(ctx, ss, req, fn)
	}
	res, err := viaCache.GetOrInitCall(ctx, ss.id, resolver{}, req, fn)
	if err != nil {
		return nil, err
	}
	return res, nil
}

//go:noinline
func (e *env) objectsCall(ctx context.Context, ss *sessState, req *dagql.CallRequest, fn func(context.Context) (dagql.AnyResult, error)) (dagql.AnyResult, error) {
	res, err := e.cache.GetOrInitCall(ctx, ss.id, resolver{}, req, fn)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	return res, nil
}

//go:noinline
func (e *env) nthValueLike(ctx context.Context, ss *sessState, req *dagql.CallRequest, fn func(context.Context) (dagql.AnyResult, error)) (dagql.AnyResult, error) {
	return e.cache.GetOrInitCall(ctx, ss.id, resolver{}, req, fn)
}

// call makes one (*Cache).GetOrInitCall through the core telemetry wrapper and
// records it.
func (e *env) call(ctx context.Context, ss *sessState, req *dagql.CallRequest, telemetry bool, fn func(context.Context) (dagql.AnyResult, error)) (dagql.AnyResult, error) {
	if !e.truth.enabled() {
		tr := &dagql.CallTrace{}
		callCtx := dagql.WithCallTrace(ctx, tr)
		res, err := core.AroundCall(req, telemetry, func() (dagql.AnyResult, error) {
			return e.getOrInit(callCtx, ss, req, fn, nested(ctx))
		})
		e.count(outcomeOf(tr, res, err))
		return res, err
	}
	tr := &dagql.CallTrace{}
	var parent *dagql.ResultCall
	if p, ok := ctx.Value(parentFrameKey{}).(*dagql.ResultCall); ok {
		parent = p
	}
	callCtx := dagql.WithCallTrace(context.WithValue(ctx, parentFrameKey{}, req.ResultCall), tr)
	g := goid()
	e.noteGoroutine(g)
	start := nanotime()
	res, err := core.AroundCall(req, telemetry, func() (dagql.AnyResult, error) {
		return e.getOrInit(callCtx, ss, req, fn, parent != nil)
	})
	end := nanotime()

	outcome := outcomeOf(tr, res, err)
	e.count(outcome)
	rec := callRec{Kind: "call", Session: ss.id, Goid: g, Field: req.Field, Outcome: outcome, Waiters: tr.Waiters, StartNs: start, EndNs: end, Iface: viaInterface && parent == nil}
	if d, ok := req.ResultCall.HeldRecipeDigest(); ok {
		rec.Digest = strp(d)
	}
	if outcome == "hit" && tr.HitRoute != "" {
		rec.HitRoute = strp(tr.HitRoute)
	}
	if o, r, ok := core.Evidence(req); ok {
		if o != "" {
			rec.EngineOutcome = strp(o)
		}
		if r != "" {
			rec.EngineHitRoute = strp(r)
		}
	}
	if inc, exp, unknown, ok := core.MissFacts(req); ok && outcome == "miss" {
		rec.EngineMiss = &engineMissRec{IncompatibleCandidates: inc, SawExpired: exp, UnknownInput: unknown}
	}
	switch outcome {
	case "miss", "join":
		if tr.Leader != nil && tr.Leader.ExecGoid != 0 {
			rec.ExecGoid = i64p(tr.Leader.ExecGoid)
		}
	case "uncached":
		if tr.ExecGoid != 0 {
			rec.ExecGoid = i64p(tr.ExecGoid)
		}
	}
	if parent != nil {
		if d, ok := parent.HeldRecipeDigest(); ok {
			rec.ParentDigest = strp(d)
		}
	}
	if err != nil {
		rec.Error = strp(err.Error())
	} else if id := dagql.ResultID(res); id != 0 {
		rec.ResultID = u64p(id)
	}
	e.truth.write(rec)
	return res, err
}

func outcomeOf(tr *dagql.CallTrace, res dagql.AnyResult, err error) string {
	if err != nil {
		if errors.Is(err, dagql.ErrCacheRecursiveCall) {
			return "recursive"
		}
		return "error"
	}
	if tr != nil && tr.Path != "" {
		return tr.Path
	}
	if res != nil && res.HitCache() {
		return "hit"
	}
	return "miss"
}

func (e *env) count(outcome string) {
	e.calls.Add(1)
	e.mu.Lock()
	e.outcomes[outcome]++
	e.mu.Unlock()
}

// load loads a recipe vertex (ID loading, outside or inside an open GetOrInitCall)
// and records a load_hit when it hit outside any open GetOrInitCall frame.
func (e *env) load(ctx context.Context, ss *sessState, v *dagql.RecipeVertex, underOpenCall bool) dagql.AnyResult {
	tr := &dagql.CallTrace{}
	res, via, err := e.cache.LoadRecipe(dagql.WithCallTrace(ctx, tr), ss.id, resolver{}, v)
	if err != nil || res == nil {
		return nil
	}
	if !underOpenCall && e.truth.enabled() {
		e.truth.write(loadHitRec{Kind: "load_hit", Session: ss.id, Goid: goid(), Digest: v.Digest, Via: via, HitRoute: tr.HitRoute, ResultID: dagql.ResultID(res), TNs: nanotime()})
	}
	return res
}

// arbitrary makes one GetOrInitArbitrary call and records it.
func (e *env) arbitrary(ctx context.Context, ss *sessState, key string, fn func(context.Context) (any, error)) {
	tr := &dagql.ArbTrace{}
	_, err := e.cache.GetOrInitArbitrary(dagql.WithArbTrace(ctx, tr), ss.id, key, fn)
	outcome := tr.Outcome
	if err != nil {
		outcome = "error"
	}
	e.mu.Lock()
	e.outcomes["arbitrary_"+outcome]++
	e.mu.Unlock()
	if e.truth.enabled() {
		e.truth.write(arbitraryRec{Kind: "arbitrary", Session: ss.id, Goid: goid(), Key: key, Outcome: outcome, TNs: nanotime()})
	}
}

// Request builders.

func arg(name, value string) *dagql.ResultCallArg {
	return &dagql.ResultCallArg{Name: name, Value: &dagql.ResultCallLiteral{Kind: "string", StringValue: value}}
}

func frame(field string, recv *dagql.ResultCall, recvID uint64, args ...*dagql.ResultCallArg) *dagql.ResultCall {
	f := &dagql.ResultCall{Kind: "call", Field: field, Type: &dagql.ResultCallType{NamedType: "String"}, Args: args}
	if recv != nil {
		f.Receiver = &dagql.ResultCallRef{ResultID: recvID, Call: recv}
	}
	return f
}

func request(f *dagql.ResultCall, sessionID string) *dagql.CallRequest {
	return &dagql.CallRequest{ResultCall: f, ConcurrencyKey: sessionID}
}
