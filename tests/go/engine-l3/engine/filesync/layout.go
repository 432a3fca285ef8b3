package filesync

import "unsafe"

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What      string
	Got, Want uintptr
}

// Layout returns the offsets and sizes the tracer relies on.
func Layout() []LayoutCheck {
	var (
		cc changeCache
		ch cachedChange
		cs ChangeWithStat
	)
	return []LayoutCheck{
		{"changeCache size", unsafe.Sizeof(cc), 24},
		{"changeCache.mu", unsafe.Offsetof(cc.mu), 0},
		{"changeCache.ongoingCalls", unsafe.Offsetof(cc.ongoingCalls), 8},
		{"changeCache.completedCalls", unsafe.Offsetof(cc.completedCalls), 16},
		{"cachedChange size", unsafe.Sizeof(ch), 80},
		{"cachedChange.cache", unsafe.Offsetof(ch.cache), 0},
		{"cachedChange.callKey", unsafe.Offsetof(ch.callKey), 8},
		{"cachedChange.val", unsafe.Offsetof(ch.val), 24},
		{"cachedChange.err", unsafe.Offsetof(ch.err), 32},
		{"cachedChange.waitCh", unsafe.Offsetof(ch.waitCh), 48},
		{"cachedChange.cancel", unsafe.Offsetof(ch.cancel), 56},
		{"cachedChange.waiters", unsafe.Offsetof(ch.waiters), 64},
		{"cachedChange.refCount", unsafe.Offsetof(ch.refCount), 72},
		{"ChangeWithStat.kind", unsafe.Offsetof(cs.kind), 0},
		{"ChangeWithStat.stat", unsafe.Offsetof(cs.stat), 8},
		{"ChangeKind size (int)", unsafe.Sizeof(ChangeKindNone), 8},
	}
}
