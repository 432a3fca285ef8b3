// Package server is the stand-in for engine/server: the engine-wide dagql cache and
// client sessions (initializeDaggerSession / removeDaggerSession), plus synced local
// directories.
package server

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"

	"github.com/dagger/dagger/engine"
)

type daggerSessionState string

const (
	sessionStateUninitialized daggerSessionState = "uninitialized"
	sessionStateInitialized   daggerSessionState = "initialized"
	sessionStateRemoved       daggerSessionState = "removed"
)

// Cleanups stands in for the engine's cleanup stack (passed by pointer).
type Cleanups struct {
	funcs []func() error
}

// Add registers f.
func (c *Cleanups) Add(f func() error) { c.funcs = append(c.funcs, f) }

// Run runs the cleanups in reverse order.
func (c *Cleanups) Run() error {
	var errs []error
	for i := len(c.funcs) - 1; i >= 0; i-- {
		errs = append(errs, c.funcs[i]())
	}
	return errors.Join(errs...)
}

// pad:64
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// daggerSession is one client session: sessionID 0/8, mainClientCallerID 16/24.
// There is no per-session cache object: the session's cache bookkeeping lives in the
// engine-wide dagql.Cache keyed by sessionID.
type daggerSession struct {
	sessionID          string
	mainClientCallerID string
	state              daggerSessionState
	stateMu            sync.RWMutex
	clients            map[string]*engine.ClientMetadata
	dagqlCacheEntries  int
}

// pad:472
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (srv *Server) initializeDaggerSession(
	clientMetadata *engine.ClientMetadata,
	sess *daggerSession,
	failureCleanups *Cleanups,
) error {
	sess.stateMu.Lock()
	defer sess.stateMu.Unlock()
	if sess.state != sessionStateUninitialized {
		return fmt.Errorf("session %s: already %s", sess.sessionID, sess.state)
	}
	if clientMetadata == nil || clientMetadata.SessionID != sess.sessionID {
		return fmt.Errorf("session %s: client metadata mismatch", sess.sessionID)
	}
	sess.mainClientCallerID = clientMetadata.ClientID
	sess.clients = map[string]*engine.ClientMetadata{clientMetadata.ClientID: clientMetadata}
	sess.dagqlCacheEntries = srv.dagqlCache.Size()
	failureCleanups.Add(func() error {
		srv.mu.Lock()
		delete(srv.sessions, sess.sessionID)
		srv.mu.Unlock()
		return nil
	})
	srv.mu.Lock()
	srv.sessions[sess.sessionID] = sess
	srv.mu.Unlock()
	sess.state = sessionStateInitialized
	return nil
}

// pad:559
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (srv *Server) removeDaggerSession(ctx context.Context, sess *daggerSession) error {
	sess.stateMu.Lock()
	defer sess.stateMu.Unlock()
	if sess.state == sessionStateRemoved {
		return nil
	}
	sess.state = sessionStateRemoved
	srv.mu.Lock()
	delete(srv.sessions, sess.sessionID)
	srv.mu.Unlock()

	var errs []error
	beforeEntries := srv.dagqlCache.Size()
	// pad:669
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if err := srv.dagqlCache.ReleaseSession(ctx, sess.sessionID); err != nil {
		errs = append(errs, fmt.Errorf("release dagql cache refs: %w", err))
	}
	afterEntries := srv.dagqlCache.Size()
	if srv.debugLog {
		if afterEntries != beforeEntries {
			log.Printf("released dagql cache refs for session %s beforeEntries=%d afterEntries=%d", sess.sessionID, beforeEntries, afterEntries)
		} else {
			log.Printf("session dagql cache release did not change base cache size session=%s entries=%d", sess.sessionID, afterEntries)
		}
	}
	return errors.Join(errs...)
}
