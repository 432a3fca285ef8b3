package main

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/engine/server"
)

// env is one run of the workload.
type env struct {
	srv       *server.Server
	truth     *truthWriter
	scenario  string
	seed      int64
	nSessions int
	startNs   int64

	fnRunning atomic.Int64
	sessN     atomic.Int64
	calls     atomic.Int64
	releases  atomic.Int64
	conflicts atomic.Int64
	syncN     atomic.Int64

	mu       sync.Mutex
	outcomes map[string]int
	changes  map[string]int
	leaked   []string
	open     map[string]*sessState
}

func newEnv(srv *server.Server, truth *truthWriter, scenario string, seed int64, nSessions int) *env {
	e := &env{
		srv:       srv,
		truth:     truth,
		scenario:  scenario,
		seed:      seed,
		nSessions: nSessions,
		startNs:   nanotime(),
		outcomes:  map[string]int{},
		changes:   map[string]int{},
		open:      map[string]*sessState{},
	}
	return e
}

type sessKey struct{}

type workerKey struct{}

// sessState is one open session of the workload.
type sessState struct {
	env *env
	id  string
	idx int
	s   *server.Session
	ctx context.Context

	refsTaken    atomic.Int64
	refsReleased atomic.Int64
	arbTaken     atomic.Int64
	closed       atomic.Bool
}

func sessFrom(ctx context.Context) *sessState {
	s, _ := ctx.Value(sessKey{}).(*sessState)
	return s
}

// worker is one client goroutine of a session.
type worker struct {
	env  *env
	sess *sessState
	rng  *rand.Rand
	last dagql.AnyResult
}

func workerFrom(ctx context.Context) *worker {
	w, _ := ctx.Value(workerKey{}).(*worker)
	return w
}

func (e *env) goid() int64 {
	if !e.truth.enabled() {
		return 0
	}
	return dagql.CurrentGoroutineID()
}

func (e *env) openSession(ctx context.Context) *sessState {
	n := e.sessN.Add(1)
	id := fmt.Sprintf("sess-%d", n)
	md := &server.ClientMetadata{
		ClientID:      fmt.Sprintf("client-%d", n),
		ClientVersion: "v0.0.0-standin",
		SessionID:     id,
	}
	s, err := e.srv.OpenSession(ctx, md)
	if err != nil {
		panic(fmt.Sprintf("open session %s: %v", id, err))
	}
	ss := &sessState{env: e, id: id, idx: int(n), s: s}
	sctx := server.ContextWithClientMetadata(ctx, md)
	sctx = dagql.ContextWithSessionID(sctx, id)
	ss.ctx = context.WithValue(sctx, sessKey{}, ss)
	e.mu.Lock()
	e.open[id] = ss
	e.mu.Unlock()
	e.truth.write(sessionOpenRec{
		Kind:    "session_open",
		Session: id,
		SC:      uint64(uintptr(unsafe.Pointer(s.Cache()))),
		Goid:    e.goid(),
		TNs:     nanotime(),
	})
	return ss
}

func (e *env) openSessions(ctx context.Context, n int) []*sessState {
	out := make([]*sessState, n)
	for i := range out {
		out[i] = e.openSession(ctx)
	}
	return out
}

// waitFns waits until no resolver is running (so that nothing is still calling into
// a session that is about to close).
func (e *env) waitFns() {
	deadline := time.Now().Add(10 * time.Second)
	for e.fnRunning.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// closeSession tears the session down through removeDaggerSession. With leak, the
// server skips ReleaseAndClose for it (a buggy teardown): its refs stay held.
func (e *env) closeSession(ss *sessState, leak bool) {
	if e.scenario != "highrate" {
		e.waitFns()
	}
	if leak {
		e.srv.LeakOnClose(ss.id)
	}
	ct := &dagql.CloseTrace{}
	ctx := dagql.WithCloseTrace(ss.ctx, ct)
	if err := e.srv.CloseSession(ctx, ss.s); err != nil {
		fmt.Printf("engine: close %s: %v\n", ss.id, err)
	}
	ss.closed.Store(true)
	released := ss.refsReleased.Load() + int64(ct.Released)
	taken := ss.refsTaken.Load()
	leaked := taken > released
	e.mu.Lock()
	delete(e.open, ss.id)
	if leaked {
		e.leaked = append(e.leaked, ss.id)
	}
	e.mu.Unlock()
	e.truth.write(sessionCloseRec{
		Kind:              "session_close",
		Session:           ss.id,
		SC:                uint64(uintptr(unsafe.Pointer(ss.s.Cache()))),
		Goid:              e.goid(),
		RefsTaken:         taken,
		RefsReleased:      released,
		ArbitraryTaken:    ss.arbTaken.Load(),
		ArbitraryReleased: int64(ct.ArbitraryReleased),
		ReleaseSkipped:    leak,
		Leaked:            leaked,
		TNs:               nanotime(),
	})
}

func (e *env) closeSessions(sessions []*sessState) {
	for _, ss := range sessions {
		e.closeSession(ss, false)
	}
}

func (e *env) newWorker(ss *sessState, n int) *worker {
	return &worker{
		env:  e,
		sess: ss,
		rng:  rand.New(rand.NewSource(e.seed*1_000_003 + int64(ss.idx)*7919 + int64(n))),
	}
}

func (w *worker) ctx() context.Context {
	return context.WithValue(w.sess.ctx, workerKey{}, w)
}

// record writes the truth of one (*SessionCache).GetOrInitCall invocation.
func (w *worker) record(tr *dagql.CallTrace, goid int64, field, parent string, err error, start, end int64) {
	if tr.Path == "" {
		return // no cache invocation happened
	}
	e := w.env
	outcome := tr.Path
	if err != nil {
		outcome = "error"
		if tr.Path == "recursive" {
			outcome = "recursive"
		}
	}
	if tr.RefTaken {
		w.sess.refsTaken.Add(1)
	}
	if tr.RefReleasedAtOnce {
		w.sess.refsReleased.Add(1)
	}
	e.calls.Add(1)
	e.mu.Lock()
	e.outcomes[outcome]++
	e.mu.Unlock()
	if !e.truth.enabled() {
		return
	}
	rec := callRec{
		Kind:              "call",
		Session:           w.sess.id,
		Goid:              goid,
		Field:             field,
		Outcome:           outcome,
		Path:              tr.Path,
		Waiters:           tr.Waiters,
		ReturnedIDDiffers: tr.ReturnedIDDiffers,
		DBRead:            tr.DBRead,
		DBWritten:         tr.DBWritten,
		RefTaken:          tr.RefTaken,
		StartNs:           start,
		EndNs:             end,
	}
	if tr.Digest != "" {
		rec.Digest = strp(tr.Digest)
	}
	if parent != "" {
		rec.ParentDigest = strp(parent)
	}
	if err != nil {
		rec.Error = strp(err.Error())
	}
	switch outcome {
	case "miss", "join":
		if g := tr.ExecGoid(); g != 0 {
			rec.ExecGoid = i64p(g)
		}
	case "uncached":
		rec.ExecGoid = i64p(tr.UncachedGoid)
	}
	if tr.Path == "miss" || tr.Path == "join" {
		if g := tr.ExecGoid(); g != 0 {
			rec.PathExecGoid = i64p(g)
		}
	}
	e.truth.write(rec)
}

// selectOn selects sel on recv through the worker's session cache.
func (w *worker) selectOn(ctx context.Context, recv dagql.AnyObjectResult, sel dagql.Selector, parent string) (dagql.AnyResult, error) {
	tr := &dagql.CallTrace{}
	goid := w.env.goid()
	start := nanotime()
	res, err := recv.Select(dagql.WithCallTrace(ctx, tr), w.sess.s.Dagql(), sel)
	end := nanotime()
	w.record(tr, goid, sel.Field, parent, err, start, end)
	if err == nil && res != nil {
		w.last = res
	}
	return res, err
}

// sel selects field(args) on the root.
func (w *worker) sel(field string, args map[string]string) (dagql.AnyResult, error) {
	return w.selectOn(w.ctx(), w.sess.s.Dagql().Root(), selector(field, args), "")
}

// selTimeout is sel with a deadline.
func (w *worker) selTimeout(field string, args map[string]string, d time.Duration) (dagql.AnyResult, error) {
	ctx, cancel := context.WithTimeout(w.ctx(), d)
	defer cancel()
	return w.selectOn(ctx, w.sess.s.Dagql().Root(), selector(field, args), "")
}

// selOnResult selects on an object result (its ID becomes the receiver).
func (w *worker) selOnResult(recv dagql.AnyResult, field string, args map[string]string) (dagql.AnyResult, error) {
	obj, ok := recv.(dagql.AnyObjectResult)
	if !ok {
		return nil, fmt.Errorf("%T is not an object", recv)
	}
	return w.selectOn(w.ctx(), obj, selector(field, args), "")
}

// loadType probes the cache for id (LoadType: "cache miss" when absent).
func (w *worker) loadType(id *call.ID) (dagql.AnyResult, error) {
	tr := &dagql.CallTrace{}
	goid := w.env.goid()
	start := nanotime()
	res, err := w.sess.s.Dagql().LoadType(dagql.WithCallTrace(w.ctx(), tr), id)
	end := nanotime()
	field := ""
	if id != nil {
		field = id.Field()
	}
	w.record(tr, goid, field, "", err, start, end)
	return res, err
}

// nilIDCall calls the session cache with a key without ID.
func (w *worker) nilIDCall() error {
	tr := &dagql.CallTrace{}
	goid := w.env.goid()
	start := nanotime()
	_, err := w.sess.s.Cache().GetOrInitCall(dagql.WithCallTrace(w.ctx(), tr), dagql.CacheKey{}, func(context.Context) (dagql.AnyResult, error) {
		return nil, nil
	})
	end := nanotime()
	w.record(tr, goid, "", "", err, start, end)
	return err
}

// arbitrary caches an opaque value by key.
func (w *worker) arbitrary(key string, sleep time.Duration) error {
	tr := &dagql.ArbitraryTrace{}
	goid := w.env.goid()
	start := nanotime()
	_, err := w.sess.s.Cache().GetOrInitArbitrary(dagql.WithArbitraryTrace(w.ctx(), tr), key, func(ctx context.Context) (any, error) {
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return "value of " + key, nil
	})
	end := nanotime()
	if err == nil {
		w.sess.arbTaken.Add(1)
	}
	outcome := tr.Path
	if err != nil {
		outcome = "error"
	}
	w.env.mu.Lock()
	w.env.outcomes["arbitrary_"+outcome]++
	w.env.mu.Unlock()
	rec := arbitraryRec{Kind: "arbitrary", Session: w.sess.id, Goid: goid, Key: key, Outcome: outcome, StartNs: start, EndNs: end}
	if err != nil {
		rec.Error = strp(err.Error())
	}
	w.env.truth.write(rec)
	return err
}

// parallel runs fn for every (session, worker index) pair concurrently and waits.
func (e *env) parallel(sessions []*sessState, perSession int, fn func(w *worker)) {
	var wg sync.WaitGroup
	for _, ss := range sessions {
		for i := 0; i < perSession; i++ {
			w := e.newWorker(ss, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(w)
			}()
		}
	}
	wg.Wait()
}

// burst makes every (session, worker) call the same selection at the same instant.
func (e *env) burst(sessions []*sessState, perSession int, field string, args map[string]string) {
	start := make(chan struct{})
	var ready sync.WaitGroup
	var wg sync.WaitGroup
	for _, ss := range sessions {
		for i := 0; i < perSession; i++ {
			w := e.newWorker(ss, 100+i)
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready.Done()
				<-start
				_, _ = w.sel(field, args)
			}()
		}
	}
	ready.Wait()
	close(start)
	wg.Wait()
}

func (e *env) installHooks() {
	dagql.EnableTracing(e.truth.enabled())
	dagql.ReleaseHook = func(ctx context.Context, digest string, after int64) {
		e.releases.Add(1)
		if !e.truth.enabled() {
			return
		}
		rec := releaseRec{Kind: "release", Digest: digest, RefcountAfter: after, Goid: e.goid(), TNs: nanotime()}
		if ss := sessFrom(ctx); ss != nil {
			rec.Session = strp(ss.id)
		}
		e.truth.write(rec)
	}
	dagql.ArbitraryReleaseHook = func(ctx context.Context, key string, after int) {
		rec := arbitraryReleaseRec{Kind: "arbitrary_release", Key: key, RefcountAfter: after}
		if ss := sessFrom(ctx); ss != nil {
			rec.Session = strp(ss.id)
		}
		e.truth.write(rec)
	}
	installFilesyncHooks(e)
}

func (e *env) end() endRec {
	e.mu.Lock()
	defer e.mu.Unlock()
	outcomes := map[string]int{}
	for k, v := range e.outcomes {
		outcomes[k] = v
	}
	changes := map[string]int{}
	for k, v := range e.changes {
		changes[k] = v
	}
	leaked := append([]string{}, e.leaked...)
	sort.Strings(leaked)
	return endRec{
		Kind:          "end",
		Scenario:      e.scenario,
		Seed:          e.seed,
		Calls:         e.calls.Load(),
		Outcomes:      outcomes,
		Sessions:      int(e.sessN.Load()),
		LeakedSession: leaked,
		Releases:      e.releases.Load(),
		Changes:       changes,
		Conflicts:     e.conflicts.Load(),
		CacheEntries:  e.srv.DagqlCacheEntries(),
		CacheAddr:     e.srv.DagqlCacheAddr(),
		DurationNs:    nanotime() - e.startNs,
	}
}
