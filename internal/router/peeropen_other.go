//go:build !unix

package router

import "net"

// peerOpen cannot probe without unix sockets; a closed connection is then
// found by the request written on it (and a replayable one is replayed).
func peerOpen(net.Conn) bool { return true }
