package filesync

import "testing"

// TestLayout asserts the offsets and sizes the tracer reads (also: engine -check-layout).
func TestLayout(t *testing.T) {
	for _, l := range Layout() {
		if l.Got != l.Want {
			t.Errorf("%s: offset/size %d, want %d", l.What, l.Got, l.Want)
		}
	}
}
