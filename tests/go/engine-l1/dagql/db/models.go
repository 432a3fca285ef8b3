// Package db is a stand-in for the sqlc-generated dagql/db package: the TTL metadata
// table of cached calls. The real engine keeps it in SQLite; here it is an in-memory
// table with the same query shapes (and the same Go signatures, hence registers).
package db

// Call is one row of the calls table. CallKey 0/8, StorageKey 16/24, Expiration 32.
type Call struct {
	CallKey    string
	StorageKey string
	Expiration int64
}
