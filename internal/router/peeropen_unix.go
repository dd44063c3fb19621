//go:build unix

package router

import (
	"net"
	"syscall"
	"unsafe"
)

// peerOpen reports whether an idle connection is still open at the other
// end: a non-blocking peek finds nothing to read (EAGAIN). EOF, a reset or
// unexpected bytes mean the container closed it or broke it.
func peerOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	open := false
	err = rc.Read(func(fd uintptr) bool {
		// A raw call: MSG_DONTWAIT never blocks, and syscall.Recvfrom
		// would wake the runtime's sysmon on an idle daemon (package rawio).
		_, _, rerr := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		open = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait: this is a probe, not a read
	})
	return err == nil && open
}
