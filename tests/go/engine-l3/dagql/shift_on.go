//go:build shifted

package dagql

// shiftPad moves ResultCall.recipeDigest 8 bytes up (224 -> 232), so a tracer
// reading the real offset reads garbage (plausibility test of the tracer).
type shiftPad = [8]byte

// Shifted reports whether this is the -tags shifted plausibility build.
const Shifted = true
