package server

import (
	"context"
	"errors"
	"sync"
)

// ClientMetadata stands in for engine.ClientMetadata (engine/opts.go): ClientID 0/8,
// ClientVersion 16/24, SessionID 32/40, ... Passed by pointer.
type ClientMetadata struct {
	ClientID           string
	ClientVersion      string
	SessionID          string
	ClientSecretToken  string
	ClientHostname     string
	ClientStableID     string
	Labels             map[string]string
	CloudOrg           string
	DoNotTrack         bool
	Interactive        bool
	InteractiveCommand []string
	SSHAuthSocketPath  string
	AllowedLLMModules  []string
	EagerRuntime       bool
	LockMode           string
}

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

type clientMetadataCtxKey struct{}

// ContextWithClientMetadata attaches md to ctx.
func ContextWithClientMetadata(ctx context.Context, md *ClientMetadata) context.Context {
	return context.WithValue(ctx, clientMetadataCtxKey{}, md)
}

// ClientMetadataFromContext returns the client metadata in ctx.
func ClientMetadataFromContext(ctx context.Context) (*ClientMetadata, error) {
	md, ok := ctx.Value(clientMetadataCtxKey{}).(*ClientMetadata)
	if !ok {
		return nil, errors.New("no client metadata in context")
	}
	return md, nil
}
