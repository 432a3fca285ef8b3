package dagql

import (
	"context"
	"unsafe"
)

// Stand-in helpers (not in the real engine): the workload plants ownership anomalies
// through them and reads addresses for the ground truth.

// PlantExtraDecrement decrements a result's ownership once more than anybody owns
// it (a double release), under egraphMu, without collecting. Returns the count after.
func (c *Cache) PlantExtraDecrement(ctx context.Context, res AnyResult) int64 {
	shared := res.cacheSharedResult()
	c.egraphMu.Lock()
	defer c.egraphMu.Unlock()
	_, _ = c.decrementIncomingOwnershipLocked(ctx, shared, nil)
	return shared.incomingOwnershipCount
}

// PlantUntrackedIncrement increments a result's ownership without any session
// tracking it, so it stays owned after its sessions are released.
func (c *Cache) PlantUntrackedIncrement(ctx context.Context, res AnyResult) int64 {
	shared := res.cacheSharedResult()
	c.egraphMu.Lock()
	defer c.egraphMu.Unlock()
	c.incrementIncomingOwnershipLocked(ctx, shared)
	return shared.incomingOwnershipCount
}

// OwnershipCount returns a result's incomingOwnershipCount.
func (c *Cache) OwnershipCount(res AnyResult) int64 {
	shared := res.cacheSharedResult()
	c.egraphMu.RLock()
	defer c.egraphMu.RUnlock()
	return shared.incomingOwnershipCount
}

// Addr is the cache's address (for the truth's cache_addr).
func (c *Cache) Addr() uintptr { return uintptr(unsafe.Pointer(c)) }
