package db

import (
	"context"
	"database/sql"
	"sync"
)

// Queries runs the cache metadata queries.
type Queries struct {
	db DBTX
}

// DBTX is the subset of *sql.DB the generated code needs; here an in-memory table.
type DBTX interface {
	get(key string) (Call, bool)
	put(row Call)
	each(fn func(Call) bool)
	remove(key string)
}

// New returns Queries over an empty in-memory table.
func New() *Queries {
	return &Queries{db: &memTable{rows: map[string]Call{}}}
}

// SelectCall returns the row for key, or sql.ErrNoRows.
func (q *Queries) SelectCall(ctx context.Context, key string) (*Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	row, ok := q.db.get(key)
	if !ok {
		return nil, sql.ErrNoRows
	}
	i := row
	return &i, nil
}

// SetExpirationParams is the argument of SetExpiration (7 words: passed on the stack).
type SetExpirationParams struct {
	CallKey        string
	StorageKey     string
	Expiration     int64
	PrevStorageKey string
}

// SetExpiration is a compare-and-upsert: the row is written when absent, or when its
// current storage key equals arg.PrevStorageKey; otherwise a concurrent writer won and
// the row is left alone (not an error).
func (q *Queries) SetExpiration(ctx context.Context, arg SetExpirationParams) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if arg.CallKey == "" || arg.StorageKey == "" {
		return sql.ErrNoRows
	}
	mt, ok := q.db.(*memTable)
	if !ok {
		return sql.ErrConnDone
	}
	mt.mu.Lock()
	defer mt.mu.Unlock()
	cur, exists := mt.rows[arg.CallKey]
	switch {
	case !exists:
	case cur.StorageKey == arg.PrevStorageKey:
	case cur.StorageKey == arg.StorageKey && cur.Expiration < arg.Expiration:
	default:
		return nil
	}
	mt.rows[arg.CallKey] = Call{
		CallKey:    arg.CallKey,
		StorageKey: arg.StorageKey,
		Expiration: arg.Expiration,
	}
	return nil
}

// GCExpiredCallsParams is the argument of GCExpiredCalls.
type GCExpiredCallsParams struct {
	Now int64
}

// GCExpiredCalls deletes rows that expired before arg.Now.
func (q *Queries) GCExpiredCalls(ctx context.Context, arg GCExpiredCallsParams) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var expired []string
	q.db.each(func(row Call) bool {
		if row.Expiration < arg.Now {
			expired = append(expired, row.CallKey)
		}
		return true
	})
	for _, key := range expired {
		q.db.remove(key)
	}
	return nil
}

type memTable struct {
	mu   sync.Mutex
	rows map[string]Call
}

func (t *memTable) get(key string) (Call, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	row, ok := t.rows[key]
	return row, ok
}

func (t *memTable) put(row Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows[row.CallKey] = row
}

func (t *memTable) each(fn func(Call) bool) {
	t.mu.Lock()
	rows := make([]Call, 0, len(t.rows))
	for _, r := range t.rows {
		rows = append(rows, r)
	}
	t.mu.Unlock()
	for _, r := range rows {
		if !fn(r) {
			return
		}
	}
}

func (t *memTable) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.rows, key)
}
