package server

import (
	"context"
	"sync"
	"unsafe"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine"
	"github.com/dagger/dagger/engine/filesync"
)

// Server holds the engine-wide dagql cache and the sessions.
type Server struct {
	dagqlCache *dagql.Cache
	debugLog   bool

	mu       sync.Mutex
	sessions map[string]*daggerSession
	localFS  map[string]*filesync.LocalFS
}

// NewServer returns a server with an empty cache.
func NewServer(debugLog bool) *Server {
	return &Server{
		dagqlCache: dagql.NewCache(),
		debugLog:   debugLog,
		sessions:   map[string]*daggerSession{},
		localFS:    map[string]*filesync.LocalFS{},
	}
}

// Cache returns the engine-wide dagql cache.
func (srv *Server) Cache() *dagql.Cache { return srv.dagqlCache }

// DagqlCacheAddr is the cache's address (ground truth for lock-name tests).
func (srv *Server) DagqlCacheAddr() uintptr { return uintptr(unsafe.Pointer(srv.dagqlCache)) }

// Session is the exported handle of a daggerSession.
type Session struct{ sess *daggerSession }

// ID returns the session ID.
func (s *Session) ID() string { return s.sess.sessionID }

// OpenSession initializes a session for client clientID.
func (srv *Server) OpenSession(sessionID, clientID string) (*Session, error) {
	md := &engine.ClientMetadata{ClientID: clientID, ClientSecretToken: "token-" + clientID, SessionID: sessionID, ClientHostname: "standin"}
	sess := &daggerSession{sessionID: sessionID, state: sessionStateUninitialized}
	cleanups := &Cleanups{}
	if err := srv.initializeDaggerSession(md, sess, cleanups); err != nil {
		_ = cleanups.Run()
		return nil, err
	}
	return &Session{sess: sess}, nil
}

// CloseSession removes the session (releasing its cache ownership).
func (srv *Server) CloseSession(ctx context.Context, s *Session) error {
	return srv.removeDaggerSession(ctx, s.sess)
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
