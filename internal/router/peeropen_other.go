//go:build !unix

package router

import "net"

// peeker cannot probe without unix sockets; a closed connection is then
// found by the request written on it (and a replayable one is replayed).
type peeker struct{}

func newPeeker(net.Conn) *peeker { return &peeker{} }

func (*peeker) peerOpen() bool { return true }
