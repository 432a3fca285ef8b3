package engine

import (
	"context"
	"errors"
)

// ClientMetadata stands in for engine.ClientMetadata (engine/opts.go at v0.20.8):
// the same field order, so ClientID 0/8, ClientSecretToken 16/24, SessionID 32/40,
// ClientHostname 48, ... Passed by pointer.
type ClientMetadata struct {
	ClientID                  string            // 0
	ClientSecretToken         string            // 16
	SessionID                 string            // 32
	ClientHostname            string            // 48
	ClientStableID            string            // 64
	ClientVersion             string            // 80
	Labels                    map[string]string // 96
	Interactive               bool              // 104
	InteractiveCommand        []string          // 112
	UpstreamCacheImportConfig []string          // 136
	UpstreamCacheExportConfig []string          // 160
	CloudOrg                  string            // 184
	DoNotTrack                bool              // 200
	SSHAuthSocketPath         string            // 208
	AllowedLLMModules         []string          // 224
	EagerRuntime              bool              // 248
	CloudAuth                 *string           // 256
	EnableCloudScaleOut       bool              // 264
	CloudScaleOutEngineID     string            // 272
	ExtraModules              []string          // 288
	LoadWorkspaceModules      bool              // 312
	SkipWorkspaceModules      bool              // 313
	Workspace                 *string           // 320
}

type clientMetadataCtxKey struct{}

// ContextWithClientMetadata attaches md to ctx.
func ContextWithClientMetadata(ctx context.Context, md *ClientMetadata) context.Context {
	return context.WithValue(ctx, clientMetadataCtxKey{}, md)
}

// ClientMetadataFromContext returns the client metadata in ctx (not inlined, as in
// the real engine where it also validates and copies).
//
//go:noinline
func ClientMetadataFromContext(ctx context.Context) (*ClientMetadata, error) {
	md, ok := ctx.Value(clientMetadataCtxKey{}).(*ClientMetadata)
	if !ok {
		return nil, errors.New("failed to get client metadata from context")
	}
	return md, nil
}
