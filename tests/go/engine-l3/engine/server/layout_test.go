package server

import "testing"

func TestLayout(t *testing.T) {
	for _, l := range Layout() {
		if l.Got != l.Want {
			t.Errorf("%s: offset %d, want %d", l.What, l.Got, l.Want)
		}
	}
}
