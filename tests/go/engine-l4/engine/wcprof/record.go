// Package wcprof is a reduced stand-in for the engine's built-in wall-clock profiler
// (engine/wcprof at main 13d493ee6e): ops with a kind, class, ident, outcome and result
// id, recorded into a bounded in-memory buffer. Off by default; every hook is then an
// atomic load and a nil check.
package wcprof

import (
	"context"
	"sync"
	"sync/atomic"
)

// OpKind is the kind of an op.
type OpKind uint8

const (
	OpKindNone OpKind = iota
	OpKindCall
	OpKindCallExec
	OpKindInternal
)

// WorkType classifies an op's work (unused by the stand-in).
type WorkType uint8

// Outcome is how an op ended.
type Outcome uint8

const (
	OutcomeNone Outcome = iota
	OutcomeHit
	OutcomeExecuted
	OutcomeJoined
	OutcomeDoNotCache
	OutcomeOK
	OutcomeError
	OutcomeCanceled
)

// OpOpts (64 B): Ident 0, ClientID 16, WorkType 32, Argv 40. Passed by value (8 words,
// on the stack of BeginOp).
type OpOpts struct {
	Ident    string
	ClientID string
	WorkType WorkType
	Argv     []string
}

// Op (64 B): r 0, id 8, parentID 16, kind 24, work 25, classID 28, identID 32,
// clientID 36, metaID 40, startNS 48, outcomeHint 56.
type Op struct {
	r           *recorder
	id          uint64
	parentID    uint64
	kind        OpKind
	work        WorkType
	classID     uint32
	identID     uint32
	clientID    uint32
	metaID      uint32
	startNS     int64
	outcomeHint Outcome
}

// Event is one recorded op end (reduced).
type Event struct {
	Kind     OpKind
	Outcome  Outcome
	OpID     uint64
	ParentID uint64
	ResultID uint64
	ClassID  uint32
	IdentID  uint32
	StartNS  int64
	EndNS    int64
}

type recorder struct {
	mu      sync.Mutex
	nextID  atomic.Uint64
	strings map[string]uint32
	events  []Event
	max     int
}

var global atomic.Pointer[recorder]

// Enable turns the engine-global profiler on or off.
func Enable(on bool) {
	if on {
		global.Store(&recorder{strings: map[string]uint32{}, max: 1 << 20})
	} else {
		global.Store(nil)
	}
}

// Events returns how many events were recorded.
func Events() int {
	r := global.Load()
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

type opCtxKey struct{}

// pad:116
//
//
//

//go:noinline
func BeginOp(ctx context.Context, kind OpKind, class string, opts OpOpts) (context.Context, *Op) {
	r := recorderFor(ctx)
	if r == nil {
		return ctx, nil
	}
	op := &Op{r: r, id: r.nextID.Add(1), kind: kind, work: opts.WorkType, startNS: nanotime()}
	if parent, ok := ctx.Value(opCtxKey{}).(*Op); ok && parent != nil {
		op.parentID = parent.id
	}
	r.mu.Lock()
	op.classID = r.internLocked(class)
	if opts.Ident != "" {
		op.identID = r.internLocked(opts.Ident)
	}
	if opts.ClientID != "" {
		op.clientID = r.internLocked(opts.ClientID)
	}
	if len(opts.Argv) > 0 {
		op.metaID = r.internLocked(opts.Argv[0])
	}
	r.mu.Unlock()
	return context.WithValue(ctx, opCtxKey{}, op), op
}

func (r *recorder) internLocked(s string) uint32 {
	if id, ok := r.strings[s]; ok {
		return id
	}
	id := uint32(len(r.strings) + 1)
	r.strings[s] = id
	return id
}

//go:noinline
func recorderFor(ctx context.Context) *recorder {
	r := global.Load()
	if r == nil {
		return nil
	}
	_ = ctx
	return r
}

// Enabled reports whether profiling records anything for ctx (inlined).
func Enabled(ctx context.Context) bool {
	return recorderFor(ctx) != nil
}

// ID returns the op id (0 for a nil op).
func (op *Op) ID() uint64 {
	if op == nil {
		return 0
	}
	return op.id
}

// SetIdent interns the op's ident (the call key).
func (op *Op) SetIdent(ident string) {
	if op == nil || op.r == nil {
		return
	}
	op.identID = op.r.intern(ident)
}

func (r *recorder) intern(s string) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.internLocked(s)
}

// SetOutcomeHint records the outcome the op will end with unless overridden.
func (op *Op) SetOutcomeHint(o Outcome) {
	if op != nil {
		op.outcomeHint = o
	}
}

// pad:200
//
//
//
//

//go:noinline
func (op *Op) EndWithResult(outcome Outcome, resultID uint64) {
	if op == nil || op.r == nil {
		return
	}
	r := op.r
	ev := Event{
		Kind:     op.kind,
		Outcome:  outcome,
		OpID:     op.id,
		ParentID: op.parentID,
		ResultID: resultID,
		ClassID:  op.classID,
		IdentID:  op.identID,
		StartNS:  op.startNS,
		EndNS:    nanotime(),
	}
	r.mu.Lock()
	if len(r.events) < r.max {
		r.events = append(r.events, ev)
	}
	r.mu.Unlock()
}

// End ends the op without a result.
func (op *Op) End(outcome Outcome) {
	if op == nil {
		return
	}
	op.EndWithResult(outcome, 0)
}

// OutcomeHint returns the hint.
func (op *Op) OutcomeHint() Outcome {
	if op == nil {
		return OutcomeNone
	}
	return op.outcomeHint
}
