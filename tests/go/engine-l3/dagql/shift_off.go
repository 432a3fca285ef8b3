//go:build !shifted

package dagql

// shiftPad is empty in the normal build (see shift_on.go).
type shiftPad = [0]byte

// Shifted reports whether this is the -tags shifted plausibility build.
const Shifted = false
