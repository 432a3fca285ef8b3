//go:build l4unknown

package main

// variant names this build (the "variant" of the end record).
const variant = "unknown"
