//go:build !renamedprobe

package dagql

import (
	"context"

	"github.com/dagger/dagger/dagql/call"
)

// lookupLocked is the lookup GetOrInitCall performs under egraphMu (inlined).
func (c *cache) lookupLocked(ctx context.Context, id *call.ID) (AnyResult, bool, error) {
	return c.lookupCacheForID(ctx, id)
}
