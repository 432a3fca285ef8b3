// Package server is a stand-in for engine/server: it owns the base dagql cache and
// the client sessions, each with its own SessionCache.
package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/dagql/db"
	"github.com/dagger/dagger/engine"
	"github.com/dagger/dagger/engine/filesync"
)

// Server is the engine server.
type Server struct {
	daggerSessionsMu sync.RWMutex
	daggerSessions   map[string]*daggerSession

	baseDagqlCache dagql.Cache
	dagqlDB        *db.Queries
	newRoot        func() dagql.AnyObjectResult

	localFSMu sync.Mutex
	localFS   map[string]*filesync.LocalFS

	debugLog bool
}

// Opts configures a Server.
type Opts struct {
	// NewRoot returns the root object of a session's dagql schema.
	NewRoot func() dagql.AnyObjectResult
	// DebugLog logs session teardown.
	DebugLog bool
}

// NewServer returns a server with an empty base cache.
func NewServer(ctx context.Context, opts Opts) (*Server, error) {
	queries := db.New()
	baseCache, err := dagql.NewCache(ctx, queries)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		daggerSessions: map[string]*daggerSession{},
		baseDagqlCache: baseCache,
		dagqlDB:        queries,
		newRoot:        opts.NewRoot,
		localFS:        map[string]*filesync.LocalFS{},
		debugLog:       opts.DebugLog,
	}
	go baseCache.GCLoop(ctx)
	return srv, nil
}

// Session is a handle on an open session.
type Session struct {
	sess *daggerSession
}

func (s *Session) ID() string                 { return s.sess.sessionID }
func (s *Session) Cache() *dagql.SessionCache { return s.sess.dagqlCache }
func (s *Session) Dagql() *dagql.Server       { return s.sess.dagql }
func (s *Session) ClientMetadata() *engine.ClientMetadata {
	return s.sess.clients[s.sess.mainClientCallerID].metadata
}

// OpenSession creates the session of clientMetadata.SessionID (getOrInitSession): the
// session is inserted in the map first, then initialized.
func (srv *Server) OpenSession(ctx context.Context, clientMetadata *engine.ClientMetadata) (*Session, error) {
	if clientMetadata.SessionID == "" {
		return nil, errors.New("session ID is empty")
	}
	srv.daggerSessionsMu.Lock()
	if _, exists := srv.daggerSessions[clientMetadata.SessionID]; exists {
		srv.daggerSessionsMu.Unlock()
		return nil, fmt.Errorf("session %s already exists", clientMetadata.SessionID)
	}
	sess := &daggerSession{
		sessionID:          clientMetadata.SessionID,
		mainClientCallerID: clientMetadata.ClientID,
		state:              sessionStateUninitialized,
		clients: map[string]*daggerClient{
			clientMetadata.ClientID: {clientID: clientMetadata.ClientID, metadata: clientMetadata},
		},
	}
	srv.daggerSessions[sess.sessionID] = sess
	srv.daggerSessionsMu.Unlock()

	failureCleanups := &Cleanups{}
	if err := srv.initializeDaggerSession(clientMetadata, sess, failureCleanups); err != nil {
		srv.daggerSessionsMu.Lock()
		delete(srv.daggerSessions, sess.sessionID)
		srv.daggerSessionsMu.Unlock()
		return nil, errors.Join(err, failureCleanups.Run())
	}
	return &Session{sess: sess}, nil
}

// CloseSession tears a session down (removeDaggerSession).
func (srv *Server) CloseSession(ctx context.Context, s *Session) error {
	return srv.removeDaggerSession(ctx, s.sess)
}

// LocalFS returns the synced directory for root (shared by all sessions).
func (srv *Server) LocalFS(root string) *filesync.LocalFS {
	srv.localFSMu.Lock()
	defer srv.localFSMu.Unlock()
	fs, ok := srv.localFS[root]
	if !ok {
		fs = filesync.NewLocalFS(root)
		srv.localFS[root] = fs
	}
	return fs
}

// ConnectedClients is the number of sessions (dagger_connected_clients).
func (srv *Server) ConnectedClients() int {
	srv.daggerSessionsMu.RLock()
	defer srv.daggerSessionsMu.RUnlock()
	return len(srv.daggerSessions)
}

// DagqlCacheEntries is the base cache's Size (dagger_dagql_cache_entries).
func (srv *Server) DagqlCacheEntries() int {
	return srv.baseDagqlCache.Size()
}

// DagqlCacheEntryStats breaks the cache entries down.
func (srv *Server) DagqlCacheEntryStats() dagql.CacheEntryStats {
	return srv.baseDagqlCache.EntryStats()
}

// ClientMetadata is engine.ClientMetadata (re-exported for the workload).
type ClientMetadata = engine.ClientMetadata

// ContextWithClientMetadata attaches md to ctx.
func ContextWithClientMetadata(ctx context.Context, md *ClientMetadata) context.Context {
	return engine.ContextWithClientMetadata(ctx, md)
}
