package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

type daggerSessionState int

const (
	sessionStateUninitialized daggerSessionState = iota
	sessionStateInitialized
	sessionStateRemoved
)

// pad:60
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// daggerSession is one client session; sessionID (0/8) keys the session's
// bookkeeping inside the engine-wide cache.
type daggerSession struct {
	sessionID          string
	mainClientCallerID string

	state   daggerSessionState
	stateMu sync.RWMutex

	clients  map[string]*ClientMetadata
	clientMu sync.RWMutex

	dagqlMu       sync.Mutex
	dagqlInFlight int
	dagqlClosing  bool
}

// pad:314
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// requires that sess.stateMu is held
//
//go:noinline
func (srv *Server) initializeDaggerSession(
	clientMetadata *ClientMetadata,
	sess *daggerSession,
	failureCleanups *Cleanups,
) error {
	if clientMetadata == nil || sess == nil {
		return errors.New("initialize session: missing metadata or session")
	}
	if clientMetadata.SessionID == "" {
		return errors.New("initialize session: empty session ID")
	}
	srv.logf("initializing new session %s", clientMetadata.SessionID)
	sess.clientMu.Lock()
	sess.clients[clientMetadata.ClientID] = clientMetadata
	sess.clientMu.Unlock()
	failureCleanups.Add(func() error {
		sess.state = sessionStateRemoved
		return nil
	})
	sess.state = sessionStateInitialized
	return nil
}

// pad:390
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// requires that sess.stateMu is held
//
//go:noinline
func (srv *Server) removeDaggerSession(ctx context.Context, sess *daggerSession) error {
	srv.logf("removing session %s", sess.sessionID)
	var errs error

	sess.dagqlMu.Lock()
	sess.dagqlClosing = true
	sess.dagqlMu.Unlock()

	beforeEntries := srv.engineCache.Size()
	// pad:479
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if err := srv.engineCache.ReleaseSession(ctx, sess.sessionID); err != nil {
		srv.logf("error releasing dagql cache: %v", err)
		errs = errors.Join(errs, fmt.Errorf("release dagql cache: %w", err))
	}
	afterEntries := srv.engineCache.Size()
	if afterEntries != beforeEntries {
		srv.logf("released dagql cache refs for session %s: beforeEntries=%d afterEntries=%d", sess.sessionID, beforeEntries, afterEntries)
	} else {
		srv.logf("session dagql cache release did not change base cache size: entries=%d", afterEntries)
	}
	sess.state = sessionStateRemoved
	return errs
}
