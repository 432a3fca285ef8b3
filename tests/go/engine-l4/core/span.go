// Package core is the stand-in for the engine's core package: only the telemetry
// wrapper around a cache call (core.AroundFunc's cache-evidence part).
package core

// callSpan stands in for the call's otel span (trace.Span).
type callSpan struct {
	recording bool
	attrs     []string
	ended     bool
}

func (s *callSpan) IsRecording() bool { return s != nil && s.recording }

func (s *callSpan) End() { s.ended = true }

func (s *callSpan) SetAttributes(kv ...string) { s.attrs = append(s.attrs, kv...) }
