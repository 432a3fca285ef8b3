package server

import (
	"errors"
	"sync"
)

// Cleanups stands in for buildkit's cleanups helper: functions run in reverse order
// when session initialization fails.
type Cleanups struct {
	mu    sync.Mutex
	funcs []cleanupFunc
	ran   bool
}

type cleanupFunc struct {
	name string
	fn   func() error
}

// Add registers a cleanup.
func (c *Cleanups) Add(name string, fn func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.funcs = append(c.funcs, cleanupFunc{name: name, fn: fn})
}

// Run runs the cleanups (once), last added first.
func (c *Cleanups) Run() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ran {
		return nil
	}
	c.ran = true
	var errs []error
	for i := len(c.funcs) - 1; i >= 0; i-- {
		if err := c.funcs[i].fn(); err != nil {
			errs = append(errs, errors.New(c.funcs[i].name+": "+err.Error()))
		}
	}
	return errors.Join(errs...)
}
