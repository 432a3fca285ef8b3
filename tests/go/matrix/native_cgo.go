//go:build cgo && !nocgo

package main

/*
static long mx_native(long x) { return x + 7; }
*/
import "C"

// usesCgo says that mxNative calls into C.
const usesCgo = true

//go:noinline
func mxNative(x int) int {
	return int(C.mx_native(C.long(x)))
}
