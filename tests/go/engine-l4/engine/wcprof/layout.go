package wcprof

import "unsafe"

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What      string
	Got, Want uintptr
}

// Layout returns Op and OpOpts offsets.
func Layout() []LayoutCheck {
	var op Op
	var o OpOpts
	return []LayoutCheck{
		{"Op size", unsafe.Sizeof(op), 64},
		{"Op.id", unsafe.Offsetof(op.id), 8},
		{"Op.kind", unsafe.Offsetof(op.kind), 24},
		{"Op.classID", unsafe.Offsetof(op.classID), 28},
		{"Op.identID", unsafe.Offsetof(op.identID), 32},
		{"Op.startNS", unsafe.Offsetof(op.startNS), 48},
		{"Op.outcomeHint", unsafe.Offsetof(op.outcomeHint), 56},
		{"OpOpts size", unsafe.Sizeof(o), 64},
		{"OpOpts.ClientID", unsafe.Offsetof(o.ClientID), 16},
		{"OpOpts.WorkType", unsafe.Offsetof(o.WorkType), 32},
		{"OpOpts.Argv", unsafe.Offsetof(o.Argv), 40},
	}
}
