//go:build l4beta4

package main

// variant names this build (the "variant" of the end record).
const variant = "beta4"
