package server

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine"
	"github.com/dagger/dagger/engine/filesync"
)

type daggerSessionState string

const (
	sessionStateUninitialized daggerSessionState = "uninitialized"
	sessionStateInitialized   daggerSessionState = "initialized"
	sessionStateRemoved       daggerSessionState = "removed"
)

type secretStore struct{ secrets map[string][]byte }
type authProvider struct{ tokens map[string]string }
type cacheExportConfig struct{ Type, Mode string }
type cacheImportConfig struct{ Type, Ref string }
type pubSub struct{ topics map[string]int }
type services struct{ running map[string]int }
type terminalState struct{ cols, rows int }

type analyticsTracker interface {
	Capture(ctx context.Context, event string, props map[string]string)
}

type noopAnalytics struct{}

func (noopAnalytics) Capture(context.Context, string, map[string]string) {}

// pad:63
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
// daggerSession is one client session. sessionID 0/8, dagqlCache 280.
type daggerSession struct {
	sessionID          string                   // 0
	mainClientCallerID string                   // 16
	state              daggerSessionState       // 32
	stateMu            sync.RWMutex             // 48
	clients            map[string]*daggerClient // 72

	secretStore              *secretStore        // 80
	authProvider             *authProvider       // 88
	cacheExporterCfgs        []cacheExportConfig // 96
	cacheImporterCfgs        []cacheImportConfig // 120
	refs                     map[string]struct{} // 144
	refsMu                   sync.Mutex          // 152
	containers               map[string]struct{} // 160
	containersMu             sync.Mutex          // 168
	dagqlCacheEntriesAtStart int                 // 176
	telemetryPubSub          *pubSub             // 184
	services                 *services           // 192
	analytics                analyticsTracker    // 200
	interactive              bool                // 216
	interactiveCommand       []string            // 224
	allowedLLMModules        []string            // 248
	terminal                 *terminalState      // 272

	dagqlCache *dagql.SessionCache // 280
	dagql      *dagql.Server       // 288

	startedAt time.Time
	localFS   *filesync.LocalFS
}

type daggerClient struct {
	clientID string
	metadata *engine.ClientMetadata
}

// pad:273
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
func (srv *Server) initializeDaggerSession(
	clientMetadata *engine.ClientMetadata,
	sess *daggerSession,
	failureCleanups *Cleanups,
) error {
	sess.stateMu.Lock()
	defer sess.stateMu.Unlock()
	if sess.state != sessionStateUninitialized {
		return fmt.Errorf("session %s: cannot initialize in state %s", sess.sessionID, sess.state)
	}
	if clientMetadata == nil || clientMetadata.SessionID != sess.sessionID {
		return errors.New("client metadata does not match session")
	}
	sess.secretStore = &secretStore{secrets: map[string][]byte{}}
	sess.authProvider = &authProvider{tokens: map[string]string{}}
	sess.refs = map[string]struct{}{}
	sess.containers = map[string]struct{}{}
	sess.dagqlCache = dagql.NewSessionCache(srv.baseDagqlCache)
	sess.telemetryPubSub = &pubSub{topics: map[string]int{}}
	sess.services = &services{running: map[string]int{}}
	sess.analytics = noopAnalytics{}
	sess.interactive = clientMetadata.Interactive
	sess.interactiveCommand = clientMetadata.InteractiveCommand
	sess.allowedLLMModules = clientMetadata.AllowedLLMModules
	sess.startedAt = time.Now()
	failureCleanups.Add("release session cache", func() error {
		return sess.dagqlCache.ReleaseAndClose(context.Background())
	})

	if srv.newRoot == nil {
		return errors.New("server has no schema")
	}
	sess.dagql = dagql.NewServer(srv.newRoot(), sess.dagqlCache)
	sess.analytics.Capture(context.Background(), "session_init", map[string]string{
		"session": sess.sessionID,
		"client":  clientMetadata.ClientID,
	})
	sess.state = sessionStateInitialized
	return nil
}

// pad:344
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
func (srv *Server) removeDaggerSession(ctx context.Context, sess *daggerSession) error {
	srv.daggerSessionsMu.Lock()
	delete(srv.daggerSessions, sess.sessionID)
	srv.daggerSessionsMu.Unlock()

	sess.stateMu.Lock()
	defer sess.stateMu.Unlock()
	if sess.state == sessionStateRemoved {
		return nil
	}
	sess.state = sessionStateRemoved

	var errs error
	sess.refsMu.Lock()
	sess.refs = nil
	sess.refsMu.Unlock()
	sess.containersMu.Lock()
	sess.containers = nil
	sess.containersMu.Unlock()

	// release the session's refs on the base cache
	// pad:431
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	beforeEntries := srv.baseDagqlCache.Size()
	if err := sess.dagqlCache.ReleaseAndClose(ctx); err != nil {
		errs = errors.Join(errs, fmt.Errorf("error releasing dagql cache: %w", err))
	}
	// pad:436
	afterEntries := srv.baseDagqlCache.Size()
	if srv.debugLog {
		debugLogf("released dagql cache refs for session session=%s beforeEntries=%d afterEntries=%d",
			sess.sessionID, beforeEntries, afterEntries)
	}
	return errs
}

// debugLogf stands in for slog.Debug (not inlined: no logging closures named after
// the session functions).
//
//go:noinline
func debugLogf(format string, args ...any) {
	log.Printf(format, args...)
}
