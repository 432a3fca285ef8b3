package server

import "reflect"

// DagqlCacheAddr is the address of the base *dagql.cache, for the stand-in's ground truth
// only (the real engine has no such method): its single mu is at +0.
func (srv *Server) DagqlCacheAddr() uintptr {
	return reflect.ValueOf(srv.baseDagqlCache).Pointer()
}
