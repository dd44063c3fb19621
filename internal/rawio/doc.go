// Package rawio reads and writes sockets on the data path without the Go
// runtime's blocking-syscall bookkeeping.
//
// Go's sockets are non-blocking: a read or write returns at once, and the
// goroutine waits for readiness in the netpoller. Even so, net.Conn's Read
// and Write enter the kernel through syscall.Syscall, which tells the
// scheduler the thread may block. When every P is idle, as in a daemon
// waiting for its next request, that entry wakes the runtime's monitor
// thread (sysmon) with a futex; sysmon then polls every 20 µs until the
// process has been idle for a millisecond again. At one request at a time
// that is a thread wake-up and a few hundred wake-ups of polling per
// request, on the request's critical path on a 2-core machine (perf:
// 15–25 % of lunorad's CPU at one client; see bench/NOTES.md).
//
// New returns a reader and writer over a *net.TCPConn that make the same
// read(2) and write(2) calls with syscall.RawSyscall, and wait for
// readiness through the connection's own poller (syscall.RawConn), so
// deadlines, Close and concurrent use behave as they do on the net.Conn.
// Errors are the ones the net.Conn returns: *net.OpError with Op "read" or
// "write", io.EOF at end of stream.
//
// Race-detector builds, and platforms other than Linux, get the net.Conn
// itself: the race detector learns of the happens-before edges that socket
// I/O carries only through syscall.Read and syscall.Write.
package rawio
