// Package engine is a stand-in for the Dagger engine's top-level engine package: the
// build version (stamped with -ldflags -X github.com/dagger/dagger/engine.Version=...)
// and the client metadata carried in request contexts (engine/opts.go).
package engine

// Version is the engine version, set at link time.
var Version string
