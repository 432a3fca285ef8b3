package main

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	_ "unsafe" // go:linkname
)

// nanotime is CLOCK_MONOTONIC in nanoseconds (the same clock as bpf_ktime_get_ns).
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// truthWriter writes JSON lines as things happen (buffered; flushed at the end, on
// SIGINT/SIGTERM, and before -serve idles). A nil *truthWriter records nothing.
type truthWriter struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

func newTruthWriter(path string) (*truthWriter, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &truthWriter{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (t *truthWriter) enabled() bool { return t != nil }

func (t *truthWriter) write(rec any) {
	if t == nil {
		return
	}
	b, err := json.Marshal(rec)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.err = err
		return
	}
	b = append(b, '\n')
	if _, err := t.w.Write(b); err != nil && t.err == nil {
		t.err = err
	}
}

func (t *truthWriter) flush() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.w.Flush(); err != nil && t.err == nil {
		t.err = err
	}
	return t.err
}

func (t *truthWriter) close() error {
	if t == nil {
		return nil
	}
	err := t.flush()
	if cerr := t.f.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Records. Field order is the JSON order (STANDINS.md).

type sessionOpenRec struct {
	Kind    string `json:"kind"` // "session_open"
	Session string `json:"session"`
	Goid    int64  `json:"goid"`
	TNs     int64  `json:"t_ns"`
}

type callRec struct {
	Kind string `json:"kind"` // "call"
	// Made through an interface (-via-interface): the tracer cannot read its return.
	Iface          bool    `json:"iface,omitempty"`
	Session        string  `json:"session"`
	Goid           int64   `json:"goid"`
	Digest         *string `json:"digest"`
	Field          string  `json:"field"`
	Outcome        string  `json:"outcome"`
	HitRoute       *string `json:"hit_route"`
	EngineOutcome  *string `json:"engine_outcome"`
	EngineHitRoute *string `json:"engine_hit_route"`
	// The engine's miss facts when its CacheDecision was armed (beta.8+).
	EngineMiss   *engineMissRec `json:"engine_miss,omitempty"`
	ExecGoid     *int64         `json:"exec_goid"`
	Waiters      int            `json:"waiters"`
	ParentDigest *string        `json:"parent_digest"`
	Error        *string        `json:"error"`
	ResultID     *uint64        `json:"result_id"`
	StartNs      int64          `json:"start_ns"`
	EndNs        int64          `json:"end_ns"`
}

type loadHitRec struct {
	Kind     string `json:"kind"` // "load_hit"
	Session  string `json:"session"`
	Goid     int64  `json:"goid"`
	Digest   string `json:"digest"`
	Via      string `json:"via"`
	HitRoute string `json:"hit_route"`
	ResultID uint64 `json:"result_id"`
	TNs      int64  `json:"t_ns"`
}

type sessionCloseRec struct {
	Kind            string `json:"kind"` // "session_close"
	Session         string `json:"session"`
	Goid            int64  `json:"goid"`
	RefsTaken       int64  `json:"refs_taken"`
	RefsReleased    int64  `json:"refs_released"`
	ResultsReleased int64  `json:"results_released"`
	Leaked          bool   `json:"leaked"`
	TNs             int64  `json:"t_ns"`
}

type anomalyRec struct {
	Kind     string  `json:"kind"` // "anomaly"
	Type     string  `json:"type"`
	Session  *string `json:"session"`
	ResultID *uint64 `json:"result_id"`
}

type arbitraryRec struct {
	Kind    string `json:"kind"` // "arbitrary"
	Session string `json:"session"`
	Goid    int64  `json:"goid"`
	Key     string `json:"key"`
	Outcome string `json:"outcome"`
	TNs     int64  `json:"t_ns"`
}

type changeRec struct {
	Kind    string  `json:"kind"` // "change"
	Sync    string  `json:"sync"`
	Path    string  `json:"path"`
	Outcome string  `json:"outcome"`
	Goid    int64   `json:"goid"`
	Error   *string `json:"error"`
	TNs     int64   `json:"t_ns"`
}

type changeReleaseRec struct {
	Kind          string `json:"kind"` // "change_release"
	Path          string `json:"path"`
	RefcountAfter int    `json:"refcount_after"`
	Goid          int64  `json:"goid"`
}

type conflictRec struct {
	Kind  string `json:"kind"` // "conflict"
	Sync  string `json:"sync"`
	Path  string `json:"path"`
	Error string `json:"error"`
	Goid  int64  `json:"goid"`
}

// goroutineRec: the first user function of a goroutine that made or ran a cache call.
type goroutineRec struct {
	Kind string `json:"kind"` // "goroutine"
	Goid int64  `json:"goid"`
	Func string `json:"func"`
}

type endRec struct {
	Kind         string         `json:"kind"` // "end"
	CodeLine     string         `json:"code_line"`
	Variant      string         `json:"variant"`
	Scenario     string         `json:"scenario"`
	Seed         int64          `json:"seed"`
	Calls        int64          `json:"calls"`
	Outcomes     map[string]int `json:"outcomes"`
	Sessions     int            `json:"sessions"`
	CacheEntries int            `json:"cache_entries"`
	CacheAddr    uint64         `json:"cache_addr"`
	DurationNs   int64          `json:"duration_ns"`
}

func strp(s string) *string { return &s }

func i64p(v int64) *int64 { return &v }

func u64p(v uint64) *uint64 { return &v }

type engineMissRec struct {
	IncompatibleCandidates bool `json:"incompatible_candidates"`
	SawExpired             bool `json:"saw_expired"`
	UnknownInput           int  `json:"unknown_input"`
}
