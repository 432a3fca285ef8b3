package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dagger/dagger/engine/filesync"
)

type syncKey struct{}

type wantList []filesync.WantedChange

func (l wantList) Changes(context.Context) ([]filesync.WantedChange, error) {
	return append([]filesync.WantedChange(nil), l...), nil
}

type snapshotter struct{}

type snapshotRef struct{ id string }

func (r *snapshotRef) ID() string                    { return r.id }
func (r *snapshotRef) Release(context.Context) error { return nil }
func (snapshotter) Snapshot(paths []string) (filesync.ImmutableRef, error) {
	return &snapshotRef{id: "snapshot:" + strings.Join(paths, ",")}, nil
}

func installFilesyncHooks(e *env) {
	filesync.ChangeHook = func(ctx context.Context, path, outcome string, err error) {
		e.mu.Lock()
		if err != nil {
			e.changes["error"]++
		} else {
			e.changes[outcome]++
		}
		e.mu.Unlock()
		rec := changeRec{Kind: "change", Path: path, Outcome: outcome, Goid: e.goid(), TNs: nanotime()}
		if id, ok := ctx.Value(syncKey{}).(string); ok {
			rec.Sync = id
		}
		if err != nil {
			rec.Error = strp(err.Error())
		}
		e.truth.write(rec)
	}
	filesync.ChangeReleaseHook = func(path string, after int) {
		e.truth.write(changeReleaseRec{Kind: "change_release", Path: path, RefcountAfter: after, Goid: e.goid()})
	}
	filesync.ConflictHook = func(ctx context.Context, path string, err error) {
		e.conflicts.Add(1)
		rec := conflictRec{Kind: "conflict", Path: path, Error: err.Error(), Goid: e.goid()}
		if id, ok := ctx.Value(syncKey{}).(string); ok {
			rec.Sync = id
		}
		e.truth.write(rec)
	}
}

func stat(path string, size, mtime int64) *filesync.Stat {
	return &filesync.Stat{Path: path, Mode: 0o644, Uid: 1000, Gid: 1000, Size_: size, ModTime: mtime}
}

// runSync syncs wants into the local directory root on behalf of ss.
func (e *env) runSync(ss *sessState, root string, wants wantList) error {
	id := fmt.Sprintf("sync-%d", e.syncN.Add(1))
	ctx := context.WithValue(ss.ctx, syncKey{}, id)
	_, _, err := e.srv.LocalFS(root).Sync(ctx, wants, snapshotter{}, false)
	return err
}

// filesyncRound: two concurrent syncs apply the same changes (new + join), a third
// sync finds changes still held by the first (hit), a fourth expects another mtime
// for a held path (hit + conflict), and a last sync after everything was released
// applies again (new).
func filesyncRound(e *env, sessions []*sessState, round int) {
	root := fmt.Sprintf("/src/round-%d", round)
	base := wantList{}
	for i := 1; i <= 4; i++ {
		p := fmt.Sprintf("pkg/file%d.go", i)
		base = append(base, filesync.WantedChange{Path: p, Kind: filesync.ChangeKindModify, Stat: stat(p, int64(100*i), 1700000000), ApplyTime: 20 * time.Millisecond})
	}
	withSlow := append(append(wantList{}, base...), filesync.WantedChange{
		Path: "assets/big.bin", Kind: filesync.ChangeKindAdd, Stat: stat("assets/big.bin", 1<<20, 1700000000), ApplyTime: 200 * time.Millisecond,
	})
	s := func(i int) *sessState { return sessions[i%len(sessions)] }

	var wg sync.WaitGroup
	start := make(chan struct{})
	run := func(ss *sessState, delay time.Duration, wants wantList) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			time.Sleep(delay)
			_ = e.runSync(ss, root, wants)
		}()
	}
	run(s(0), 0, withSlow)
	run(s(1), 0, base)
	run(s(2), 80*time.Millisecond, base[:2])
	conflicting := wantList{base[2]}
	conflicting[0].Stat = stat(base[2].Path, base[2].Stat.Size_, 1700000999)
	run(s(3), 100*time.Millisecond, conflicting)
	close(start)
	wg.Wait()
	_ = e.runSync(s(0), root, base[:1])
}
