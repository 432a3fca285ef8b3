//go:build l4beta10 || l4beta4

package dagql

import (
	"context"
	"errors"
	"sync"
	"unsafe"
)

// ongoingCall as of v1.0.0-beta.7 .. v1.0.0-beta.10 (264 B; identical field list in
// beta.7 and beta.10): callConcurrencyKeys 0, isPersistable (bool) 32, ttlSeconds 40,
// initCompletedResultOnce 48, handoffHoldActive 60, initCompletedResultErr 64,
// waitCh 80, cancel 88, waiters 96, err 104, val 120, sharedWorkCtx 136,
// releaseSharedWorkLeaseFn 152, releaseSharedWorkLeaseOnce 160, profOpID 176,
// execSpanCtx 184, profSkip 248, res 256.
type ongoingCall struct {
	callConcurrencyKeys     callConcurrencyKeys
	isPersistable           bool
	ttlSeconds              int64
	initCompletedResultOnce sync.Once
	handoffHoldActive       bool
	initCompletedResultErr  error

	waitCh                     chan struct{}
	cancel                     context.CancelCauseFunc
	waiters                    int
	err                        error
	val                        AnyResult
	sharedWorkCtx              context.Context
	releaseSharedWorkLeaseFn   func(context.Context) error
	releaseSharedWorkLeaseOnce sync.Once

	profOpID    uint64
	execSpanCtx SpanContext
	profSkip    bool

	res *sharedResult
}

func (oc *ongoingCall) markPersistable() { oc.isPersistable = true }

func (oc *ongoingCall) persistable() bool { return oc.isPersistable }

// HasHandoffFunc reports whether this build has releaseOngoingCallHandoff.
const HasHandoffFunc = false

// releaseHandoff: before e77865adc7 the last waiter released the handoff hold inline
// in wait (four copies); the stand-in keeps one body here (it may not inline; it is
// not named releaseOngoingCallHandoff).
func (c *Cache) releaseHandoff(ctx context.Context, oc *ongoingCall) error {
	if oc.res == nil || !oc.handoffHoldActive {
		return nil
	}
	c.egraphMu.Lock()
	queue, decErr := c.decrementIncomingOwnershipLocked(ctx, oc.res, nil)
	collectReleases, collectErr := c.collectUnownedResultsLocked(context.WithoutCancel(ctx), queue)
	c.egraphMu.Unlock()
	oc.handoffHoldActive = false
	return errors.Join(decErr, collectErr, runOnReleaseFuncs(context.WithoutCancel(ctx), collectReleases))
}

// ongoingCallLayout: the beta.7 .. beta.10 offsets.
func ongoingCallLayout() []LayoutCheck {
	var oc ongoingCall
	return []LayoutCheck{
		{"ongoingCall size (beta.7-beta.10)", unsafe.Sizeof(oc), 264},
		{"ongoingCall.callConcurrencyKeys", unsafe.Offsetof(oc.callConcurrencyKeys), 0},
		{"ongoingCall.isPersistable (bool)", unsafe.Offsetof(oc.isPersistable), 32},
		{"ongoingCall.ttlSeconds", unsafe.Offsetof(oc.ttlSeconds), 40},
		{"ongoingCall.initCompletedResultOnce", unsafe.Offsetof(oc.initCompletedResultOnce), 48},
		{"ongoingCall.handoffHoldActive", unsafe.Offsetof(oc.handoffHoldActive), 60},
		{"ongoingCall.initCompletedResultErr", unsafe.Offsetof(oc.initCompletedResultErr), 64},
		{"ongoingCall.waitCh", unsafe.Offsetof(oc.waitCh), 80},
		{"ongoingCall.cancel", unsafe.Offsetof(oc.cancel), 88},
		{"ongoingCall.waiters", unsafe.Offsetof(oc.waiters), 96},
		{"ongoingCall.err", unsafe.Offsetof(oc.err), 104},
		{"ongoingCall.val", unsafe.Offsetof(oc.val), 120},
		{"ongoingCall.sharedWorkCtx", unsafe.Offsetof(oc.sharedWorkCtx), 136},
		{"ongoingCall.releaseSharedWorkLeaseFn", unsafe.Offsetof(oc.releaseSharedWorkLeaseFn), 152},
		{"ongoingCall.releaseSharedWorkLeaseOnce", unsafe.Offsetof(oc.releaseSharedWorkLeaseOnce), 160},
		{"ongoingCall.profOpID", unsafe.Offsetof(oc.profOpID), 176},
		{"ongoingCall.execSpanCtx", unsafe.Offsetof(oc.execSpanCtx), 184},
		{"ongoingCall.profSkip", unsafe.Offsetof(oc.profSkip), 248},
		{"ongoingCall.res", unsafe.Offsetof(oc.res), 256},
	}
}
