//go:build !cgo || nocgo

package main

// usesCgo says that mxNative calls into C.
const usesCgo = false

//go:noinline
func mxNative(x int) int {
	return x + 7
}
