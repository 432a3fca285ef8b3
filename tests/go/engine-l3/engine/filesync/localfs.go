// Package filesync is a stand-in for engine/filesync: syncing a client directory into
// the engine, with a change cache that dedupes concurrent application of the same
// change across syncs, and conflict detection when two syncs disagree about a path.
// The filesystem is simulated in memory.
package filesync

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dagger/dagger/dagql/digest"
)

// ChangeKind is the kind of a filesystem change (fsutil's ChangeKind).
type ChangeKind int

const (
	ChangeKindAdd ChangeKind = iota
	ChangeKindModify
	ChangeKindDelete
	ChangeKindNone
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeKindAdd:
		return "add"
	case ChangeKindModify:
		return "modify"
	case ChangeKindDelete:
		return "delete"
	case ChangeKindNone:
		return "none"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Stat is the stat of a synced file (fsutil types.Stat, a protobuf message).
type Stat struct {
	Path     string
	Mode     uint32
	Uid      uint32
	Gid      uint32
	Size_    int64
	ModTime  int64
	Linkname string
}

// ChangeWithStat is an applied change: kind 0, stat 8.
type ChangeWithStat struct {
	kind ChangeKind
	stat *Stat
}

func (c *ChangeWithStat) Kind() ChangeKind { return c.kind }
func (c *ChangeWithStat) Stat() *Stat      { return c.stat }

// ReadFS is the client side of a sync: the changes it wants applied.
type ReadFS interface {
	Changes(ctx context.Context) ([]WantedChange, error)
}

// WantedChange is one change the client wants, with the stat it expects.
type WantedChange struct {
	Path string
	Kind ChangeKind
	Stat *Stat
	// ApplyTime is how long applying it takes.
	ApplyTime time.Duration
}

// Accessor stands in for buildkit's cache.Accessor (an interface: 2 registers).
type Accessor interface {
	Snapshot(paths []string) (ImmutableRef, error)
}

// ImmutableRef stands in for buildkit's cache.ImmutableRef.
type ImmutableRef interface {
	ID() string
	Release(context.Context) error
}

// localFS is one synced local directory.
type localFS struct {
	root         string
	changeCache  *changeCache
	applyMu      sync.Mutex
	appliedCount int
}

// NewLocalFS returns a synced directory rooted at root.
func NewLocalFS(root string) *localFS {
	return &localFS{root: root, changeCache: &changeCache{}}
}

// LocalFS is the exported handle of a localFS.
type LocalFS = localFS

// Applied returns how many changes were applied (not deduped).
func (local *localFS) Applied() int {
	local.applyMu.Lock()
	defer local.applyMu.Unlock()
	return local.appliedCount
}

// pad:162
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
func (local *localFS) Sync(
	ctx context.Context,
	remote ReadFS,
	cacheManager Accessor,
	forParents bool,
) (_ ImmutableRef, _ digest.Digest, rerr error) {
	wanted, err := remote.Changes(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("read remote changes: %w", err)
	}
	sort.Slice(wanted, func(i, j int) bool { return wanted[i].Path < wanted[j].Path })

	var (
		mu      sync.Mutex
		held    []*cachedChange
		wg      sync.WaitGroup
		errs    = make([]error, len(wanted))
		applied []string
	)
	// release every cached change this sync holds once it is done, so later syncs
	// are not held to this sync's view of the files
	// pad:210
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	defer func() {
		for _, res := range held {
			res.release()
		}
	}()

	for i, want := range wanted {
		i, want := i, want
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = local.syncPath(ctx, want, func(res *cachedChange) {
				mu.Lock()
				held = append(held, res)
				applied = append(applied, want.Path)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, "", err
	}
	sort.Strings(applied)
	if forParents {
		return nil, "", nil
	}
	ref, err := cacheManager.Snapshot(applied)
	if err != nil {
		return nil, "", err
	}
	return ref, digest.FromString(ref.ID()), nil
}

// syncPath applies one wanted change through the change cache and verifies the
// applied change against what this sync expects.
func (local *localFS) syncPath(ctx context.Context, want WantedChange, hold func(*cachedChange)) error {
	tr := &ChangeTrace{}
	res, err := local.changeCache.getOrInit(WithChangeTrace(ctx, tr), want.Path, func(ctx context.Context) (*ChangeWithStat, error) {
		return local.applyChange(ctx, want)
	})
	if hook := ChangeHook; hook != nil {
		hook(ctx, want.Path, tr.Outcome, err)
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", want.Path, err)
	}
	hold(res)
	if err := verifyExpectedChange(want.Path, res.result(), want.Kind, want.Stat); err != nil {
		if hook := ConflictHook; hook != nil {
			hook(ctx, want.Path, err)
		}
		return err
	}
	return nil
}

// ChangeHook, if set, is called on the caller's goroutine after each getOrInit with
// the path it took ("hit", "join", "new"); ConflictHook after a failed
// verifyExpectedChange. Ground truth for the harness; not in the real engine.
var (
	ChangeHook   func(ctx context.Context, path, outcome string, err error)
	ConflictHook func(ctx context.Context, path string, err error)
)

func (local *localFS) applyChange(ctx context.Context, want WantedChange) (*ChangeWithStat, error) {
	if want.ApplyTime > 0 {
		t := time.NewTimer(want.ApplyTime)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	local.applyMu.Lock()
	local.appliedCount++
	local.applyMu.Unlock()
	var stat *Stat
	if want.Stat != nil {
		cp := *want.Stat
		stat = &cp
	}
	return &ChangeWithStat{kind: want.Kind, stat: stat}, nil
}

// pad:1067
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func verifyExpectedChange(path string, appliedChange *ChangeWithStat, expectedKind ChangeKind, expectedStat *Stat) error {
	if appliedChange == nil {
		return &ErrConflict{Path: path, FieldName: "change", OldVal: "<nil>", NewVal: expectedKind.String()}
	}
	if appliedChange.kind != expectedKind {
		return &ErrConflict{
			Path:      path,
			FieldName: "change kind",
			OldVal:    appliedChange.kind.String(),
			NewVal:    expectedKind.String(),
		}
	}
	if expectedKind == ChangeKindDelete {
		return nil
	}
	switch {
	case appliedChange.stat == nil && expectedStat == nil:
		return nil
	case appliedChange.stat == nil || expectedStat == nil:
		return &ErrConflict{Path: path, FieldName: "stat", OldVal: fmt.Sprint(appliedChange.stat != nil), NewVal: fmt.Sprint(expectedStat != nil)}
	}
	applied, expected := appliedChange.stat, expectedStat
	if applied.Mode != expected.Mode {
		return &ErrConflict{Path: path, FieldName: "mode", OldVal: fmt.Sprintf("%o", applied.Mode), NewVal: fmt.Sprintf("%o", expected.Mode)}
	}
	if applied.Uid != expected.Uid || applied.Gid != expected.Gid {
		return &ErrConflict{
			Path:      path,
			FieldName: "owner",
			OldVal:    fmt.Sprintf("%d:%d", applied.Uid, applied.Gid),
			NewVal:    fmt.Sprintf("%d:%d", expected.Uid, expected.Gid),
		}
	}
	if applied.Size_ != expected.Size_ {
		return &ErrConflict{Path: path, FieldName: "size", OldVal: fmt.Sprint(applied.Size_), NewVal: fmt.Sprint(expected.Size_)}
	}
	if applied.ModTime != expected.ModTime {
		return &ErrConflict{Path: path, FieldName: "mtime", OldVal: fmt.Sprint(applied.ModTime), NewVal: fmt.Sprint(expected.ModTime)}
	}
	if applied.Linkname != expected.Linkname {
		return &ErrConflict{Path: path, FieldName: "link target", OldVal: applied.Linkname, NewVal: expected.Linkname}
	}
	return nil
}

// pad:1119
//
//
//
//

// ErrConflict: two syncs of the same directory disagree about a path.
type ErrConflict struct {
	Path      string
	FieldName string
	OldVal    string
	NewVal    string
}

func (e *ErrConflict) Error() string {
	return fmt.Sprintf("conflict at %q: %s changed from %s to %s during sync", e.Path, e.FieldName, e.OldVal, e.NewVal)
}
