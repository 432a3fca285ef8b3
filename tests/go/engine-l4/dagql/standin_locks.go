package dagql

import "unsafe"

// HoldLock (stand-in only, for the locks scenario) takes one of the cache's own locks,
// "callsMu", "sessionMu" or "egraphMu" (exclusively), and returns the lock's address
// and the function that releases it.
func (c *Cache) HoldLock(name string) (uintptr, func()) {
	switch name {
	case "callsMu":
		c.callsMu.Lock()
		return uintptr(unsafe.Pointer(&c.callsMu)), c.callsMu.Unlock
	case "sessionMu":
		c.sessionMu.Lock()
		return uintptr(unsafe.Pointer(&c.sessionMu)), c.sessionMu.Unlock
	case "egraphMu":
		c.egraphMu.Lock()
		return uintptr(unsafe.Pointer(&c.egraphMu)), c.egraphMu.Unlock
	}
	panic("HoldLock: no lock " + name)
}
