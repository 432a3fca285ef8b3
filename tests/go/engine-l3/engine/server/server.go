// Package server is a stand-in for engine/server: the engine-wide dagql cache and
// the client sessions that use it.
package server

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine"
	"github.com/dagger/dagger/engine/filesync"
)

// ClientMetadata is engine.ClientMetadata.
type ClientMetadata = engine.ClientMetadata

// Cleanups stands in for util/cleanups.Cleanups (passed by pointer).
type Cleanups struct {
	mu  sync.Mutex
	fns []func() error
}

// Add registers a cleanup.
func (c *Cleanups) Add(fn func() error) {
	c.mu.Lock()
	c.fns = append(c.fns, fn)
	c.mu.Unlock()
}

// Run runs the cleanups in reverse order.
func (c *Cleanups) Run() error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	var err error
	for i := len(fns) - 1; i >= 0; i-- {
		if e := fns[i](); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// Server is the engine: one dagql cache shared by every session.
type Server struct {
	engineCache *dagql.Cache

	mu       sync.Mutex
	sessions map[string]*daggerSession
	localFS  map[string]*filesync.LocalFS

	// DebugLog logs session teardown.
	DebugLog bool
}

// NewServer returns a server with an empty cache.
func NewServer() *Server {
	return &Server{
		engineCache: dagql.NewCache(),
		sessions:    map[string]*daggerSession{},
		localFS:     map[string]*filesync.LocalFS{},
	}
}

// EngineCache returns the engine-wide cache.
func (srv *Server) EngineCache() *dagql.Cache { return srv.engineCache }

// DagqlCacheAddr is the cache's address (ground truth only).
func (srv *Server) DagqlCacheAddr() uintptr { return uintptr(unsafe.Pointer(srv.engineCache)) }

// Session is the workload's handle of a daggerSession.
type Session struct{ sess *daggerSession }

// ID is the session id (daggerSession.sessionID).
func (s *Session) ID() string { return s.sess.sessionID }

// OpenSession creates and initializes a session (initializeDaggerSession).
func (srv *Server) OpenSession(ctx context.Context, md *ClientMetadata) (*Session, error) {
	sess := &daggerSession{
		sessionID:          md.SessionID,
		mainClientCallerID: md.ClientID,
		clients:            map[string]*ClientMetadata{},
		state:              sessionStateUninitialized,
	}
	cleanups := &Cleanups{}
	sess.stateMu.Lock()
	err := srv.initializeDaggerSession(md, sess, cleanups)
	sess.stateMu.Unlock()
	if err != nil {
		_ = cleanups.Run()
		return nil, err
	}
	srv.mu.Lock()
	srv.sessions[sess.sessionID] = sess
	srv.mu.Unlock()
	return &Session{sess: sess}, nil
}

// CloseSession tears the session down (removeDaggerSession -> ReleaseSession).
func (srv *Server) CloseSession(ctx context.Context, s *Session) error {
	s.sess.stateMu.Lock()
	defer s.sess.stateMu.Unlock()
	err := srv.removeDaggerSession(ctx, s.sess)
	srv.mu.Lock()
	delete(srv.sessions, s.sess.sessionID)
	srv.mu.Unlock()
	return err
}

// ReleaseUnknownSession runs removeDaggerSession for a session id that never
// opened a session nor made a call (planted anomaly).
func (srv *Server) ReleaseUnknownSession(ctx context.Context, sessionID string) error {
	sess := &daggerSession{sessionID: sessionID, state: sessionStateInitialized}
	sess.stateMu.Lock()
	defer sess.stateMu.Unlock()
	return srv.removeDaggerSession(ctx, sess)
}

// LocalFS returns the synced directory rooted at root.
func (srv *Server) LocalFS(root string) *filesync.LocalFS {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	fs := srv.localFS[root]
	if fs == nil {
		fs = filesync.NewLocalFS(root)
		srv.localFS[root] = fs
	}
	return fs
}

func (srv *Server) logf(format string, args ...any) {
	if srv.DebugLog {
		fmt.Printf("engine: "+format+"\n", args...)
	}
}
