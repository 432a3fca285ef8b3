//go:build !l4beta10 && !l4beta4 && !l4unknown

package main

// variant names this build (the "variant" of the end record).
const variant = "head"
