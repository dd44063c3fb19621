package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestNewIsRawWhenEnabled(t *testing.T) {
	c, _ := pair(t)
	_, same := New(c).(*net.TCPConn)
	if same == Enabled {
		t.Fatalf("Enabled=%v but New returned the conn itself: %v", Enabled, same)
	}
	t.Logf("raw system calls in this build: %v", Enabled)
}

// TestLargeTransfer writes more than the socket buffers hold to a slow
// reader, so writes stop on EAGAIN and resume from where they stopped.
func TestLargeTransfer(t *testing.T) {
	c, s := pair(t)
	want := make([]byte, 8<<20)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	w, r := New(c), New(s)
	errc := make(chan error, 1)
	go func() {
		n, err := w.Write(want)
		if err == nil && n != len(want) {
			err = fmt.Errorf("wrote %d of %d bytes", n, len(want))
		}
		c.CloseWrite()
		errc <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 1000) // small reads: the writer fills the buffers
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", got.Len(), err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("received %d bytes, not the %d written", got.Len(), len(want))
	}
}

// TestWritesAreWhole: concurrent Writes do not interleave, as on a net.Conn.
func TestWritesAreWhole(t *testing.T) {
	c, s := pair(t)
	w, r := New(c), New(s)
	const writers, records, size = 4, 500, 3000
	var wg sync.WaitGroup
	for id := range writers {
		wg.Go(func() {
			rec := bytes.Repeat([]byte{byte('a' + id)}, size)
			for range records {
				if _, err := w.Write(rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); c.CloseWrite() }()
	all, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*records*size {
		t.Fatalf("read %d bytes, want %d", len(all), writers*records*size)
	}
	for i := 0; i < len(all); i += size {
		rec := all[i : i+size]
		if n := bytes.Count(rec, rec[:1]); n != size {
			t.Fatalf("record %d is mixed: %q…", i/size, rec[:40])
		}
	}
}

// errorCase puts a connection pair in a failing state and returns the error
// of the operation under test on conn (through rw).
type errorCase struct {
	name string
	run  func(t *testing.T, conn, peer *net.TCPConn, rw io.ReadWriter) (int, error)
}

var errorCases = []errorCase{
	{"read deadline", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		return rw.Read(make([]byte, 10))
	}},
	{"read deadline already passed", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		conn.SetReadDeadline(time.Now().Add(-time.Second))
		return rw.Read(make([]byte, 10))
	}},
	{"write deadline with full buffers", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		big := make([]byte, 64<<20) // more than both socket buffers hold
		// Long enough for the first write(2) to start before it passes,
		// even under the race detector.
		conn.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := rw.Write(big)
		if n == 0 || n == 64<<20 {
			t.Errorf("wrote %d bytes before the deadline; want some, not all", n)
		}
		return 1, err // n depends on buffer sizes; that some were written is checked above
	}},
	{"read after close", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		conn.Close()
		return rw.Read(make([]byte, 10))
	}},
	{"empty read after close", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		conn.Close()
		return rw.Read(nil)
	}},
	{"write after close", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		conn.Close()
		return rw.Write([]byte("x"))
	}},
	{"empty write after close", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		conn.Close()
		return rw.Write(nil)
	}},
	{"close while a read waits", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		time.AfterFunc(20*time.Millisecond, func() { conn.Close() })
		return rw.Read(make([]byte, 10))
	}},
	{"read after the peer reset", func(t *testing.T, conn, peer *net.TCPConn, rw io.ReadWriter) (int, error) {
		peer.SetLinger(0)
		peer.Close()
		time.Sleep(20 * time.Millisecond)
		return rw.Read(make([]byte, 10))
	}},
	{"write after the peer reset", func(t *testing.T, conn, peer *net.TCPConn, rw io.ReadWriter) (int, error) {
		peer.SetLinger(0)
		peer.Close()
		time.Sleep(20 * time.Millisecond)
		return rw.Write([]byte("x"))
	}},
	{"read at end of stream", func(t *testing.T, conn, peer *net.TCPConn, rw io.ReadWriter) (int, error) {
		peer.Write([]byte("last"))
		peer.CloseWrite()
		buf := make([]byte, 10)
		n, err := rw.Read(buf)
		if n != 4 || err != nil || string(buf[:n]) != "last" {
			t.Errorf("first read: %d %q %v; want 4 \"last\" <nil>", n, buf[:n], err)
		}
		return rw.Read(buf)
	}},
	{"empty read when open", func(t *testing.T, conn, _ *net.TCPConn, rw io.ReadWriter) (int, error) {
		return rw.Read(nil)
	}},
}

// errorResult is one error case's outcome.
type errorResult struct {
	n   int
	err error
	msg string // err's text with this pair's addresses replaced
}

// result runs tc on a new pair, through wrap's reader and writer over the
// connection (nil: the net.Conn itself).
func (tc errorCase) result(t *testing.T, wrap func(*testing.T, *net.TCPConn) io.ReadWriter) errorResult {
	conn, peer := pair(t)
	var rw io.ReadWriter = conn
	if wrap != nil {
		rw = wrap(t, conn)
	}
	n, err := tc.run(t, conn, peer, rw)
	msg := "<nil>"
	if err != nil {
		msg = strings.NewReplacer(conn.LocalAddr().String(), "LOCAL", conn.RemoteAddr().String(), "REMOTE").Replace(err.Error())
	}
	return errorResult{n, err, msg}
}

// TestErrorsMatchNetConn: every failure is reported as net.Conn reports it,
// to the letter, with the same wrapped errors.
func TestErrorsMatchNetConn(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.result(t, nil)
			got := tc.result(t, func(_ *testing.T, c *net.TCPConn) io.ReadWriter { return New(c) })
			if got.n != want.n || got.msg != want.msg {
				t.Fatalf("raw: %d, %s\nnet: %d, %s", got.n, got.msg, want.n, want.msg)
			}
			for _, target := range []error{os.ErrDeadlineExceeded, net.ErrClosed, io.EOF} {
				if errors.Is(got.err, target) != errors.Is(want.err, target) {
					t.Errorf("errors.Is(%v): raw %v, net %v", target, errors.Is(got.err, target), errors.Is(want.err, target))
				}
			}
			var gotNE, wantNE net.Error
			if errors.As(got.err, &gotNE) != errors.As(want.err, &wantNE) || (gotNE != nil && gotNE.Timeout() != wantNE.Timeout()) {
				t.Errorf("net.Error: raw %#v, net %#v", got.err, want.err)
			}
			var gotOE, wantOE *net.OpError
			if errors.As(got.err, &gotOE) && errors.As(want.err, &wantOE) &&
				(gotOE.Op != wantOE.Op || gotOE.Net != wantOE.Net) {
				t.Errorf("OpError: raw %s/%s, net %s/%s", gotOE.Op, gotOE.Net, wantOE.Op, wantOE.Net)
			}
			t.Logf("both: %d, %s", got.n, got.msg)
		})
	}
}

// BenchmarkPingPong is one small write and read each way per op, the
// proxy's pattern, through net.Conn and through rawio.
func BenchmarkPingPong(b *testing.B) {
	for _, raw := range []bool{false, true} {
		b.Run(fmt.Sprintf("raw=%v", raw), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				var rw io.ReadWriter = s
				if raw {
					rw = New(s)
				}
				echo(rw, 512)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var rw io.ReadWriter = c
			if raw {
				rw = New(c)
			}
			msg, buf := bytes.Repeat([]byte("x"), 200), make([]byte, 512)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rw.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rw, buf[:len(msg)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// awaitWriter is New's socket in raw builds.
type awaitWriter interface {
	WriteThenAwait(p []byte) (int, error)
}

// awaitRW writes through WriteThenAwait.
type awaitRW struct{ io.ReadWriter }

func (a awaitRW) Write(p []byte) (int, error) { return a.ReadWriter.(awaitWriter).WriteThenAwait(p) }

// newAwait returns c's raw reader and writer, skipping the test in builds
// without raw sockets (race, non-Linux: the router then writes as usual).
func newAwait(t *testing.T, c net.Conn) awaitRW {
	t.Helper()
	rw := New(c)
	if _, ok := rw.(awaitWriter); !ok {
		if Enabled {
			t.Fatal("raw socket without WriteThenAwait")
		}
		t.Skip("no raw sockets in this build")
	}
	return awaitRW{rw}
}

// TestWriteThenAwaitErrorsMatchWrite: WriteThenAwait fails as Write does
// (every case above whose write fails), and leaves reads as they were.
func TestWriteThenAwaitErrorsMatchWrite(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.result(t, func(t *testing.T, c *net.TCPConn) io.ReadWriter { return newAwait(t, c) })
			want := tc.result(t, nil)
			if got.n != want.n || got.msg != want.msg {
				t.Fatalf("WriteThenAwait: %d, %s\nnet.Conn Write: %d, %s", got.n, got.msg, want.n, want.msg)
			}
		})
	}
}

// TestWriteThenAwaitWaitsForTheAnswer: the call returns only once the
// peer's answer can be read, and the read then gets it.
func TestWriteThenAwaitWaitsForTheAnswer(t *testing.T) {
	c, s := pair(t)
	rw := newAwait(t, c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	gotRequest, answer := make(chan struct{}), make(chan struct{})
	go func() {
		buf := make([]byte, 7)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "request" {
			t.Errorf("peer read %q, %v", buf, err)
		}
		close(gotRequest)
		<-answer
		s.Write([]byte("answer"))
	}()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := rw.Write([]byte("request"))
		done <- result{n, err}
	}()
	<-gotRequest
	select {
	case r := <-done:
		t.Fatalf("returned (%d, %v) before the answer was sent", r.n, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(answer)
	if r := <-done; r.n != 7 || r.err != nil {
		t.Fatalf("WriteThenAwait = %d, %v; want 7, nil", r.n, r.err)
	}
	buf := make([]byte, 16)
	n, err := rw.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("read %q, %v; want \"answer\"", buf[:n], err)
	}
}

// TestWriteThenAwaitQuickAnswers: an answer racing the start of the wait
// is never missed (a miss would hang until the deadline).
func TestWriteThenAwaitQuickAnswers(t *testing.T) {
	c, s := pair(t)
	rw := newAwait(t, c)
	go echo(s, 64)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64)
	for i := range 3000 {
		msg := fmt.Appendf(nil, "ping %d", i)
		if _, err := rw.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rw, buf[:len(msg)]); err != nil || !bytes.Equal(buf[:len(msg)], msg) {
			t.Fatalf("exchange %d: read %q, %v", i, buf[:len(msg)], err)
		}
	}
}

// TestWriteThenAwaitLargeWrite: a write larger than the socket buffers
// goes out whole (the wait gives way to Write's own), then the answer reads.
func TestWriteThenAwaitLargeWrite(t *testing.T) {
	c, s := pair(t)
	rw := newAwait(t, c)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := make([]byte, 8<<20)
	rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // let the buffers fill
		b := make([]byte, len(want))
		_, err := io.ReadFull(s, b)
		if err != nil {
			t.Error(err)
		}
		got <- b
		s.Write([]byte("ok"))
	}()
	if n, err := rw.Write(want); n != len(want) || err != nil {
		t.Fatalf("WriteThenAwait = %d, %v; want %d, nil", n, err, len(want))
	}
	if !bytes.Equal(<-got, want) {
		t.Fatal("the peer read different bytes")
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// TestWriteThenAwaitEndOfWait: a deadline or the peer's close ends the wait
// with the write's success; the next Read reports what ended it, as a
// net.Conn's Read would.
func TestWriteThenAwaitEndOfWait(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		c, _ := pair(t)
		rw := newAwait(t, c)
		c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := rw.Write([]byte("x")); n != 1 || err != nil {
			t.Fatalf("WriteThenAwait = %d, %v; want 1, nil", n, err)
		}
		if _, err := rw.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after the wait: %v; want a deadline error", err)
		}
	})
	t.Run("peer closes", func(t *testing.T) {
		c, s := pair(t)
		rw := newAwait(t, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { io.ReadFull(s, make([]byte, 1)); s.Close() }()
		if n, err := rw.Write([]byte("x")); n != 1 || err != nil {
			t.Fatalf("WriteThenAwait = %d, %v; want 1, nil", n, err)
		}
		if _, err := rw.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after the wait: %v; want EOF", err)
		}
	})
	t.Run("closed while waiting", func(t *testing.T) {
		c, _ := pair(t)
		rw := newAwait(t, c)
		time.AfterFunc(30*time.Millisecond, func() { c.Close() })
		if n, err := rw.Write([]byte("x")); n != 1 || err != nil {
			t.Fatalf("WriteThenAwait = %d, %v; want 1, nil", n, err)
		}
		if _, err := rw.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after the wait: %v; want net.ErrClosed", err)
		}
	})
}

// echo writes back what it reads, bufSize bytes at most at a time, until
// either fails.
func echo(rw io.ReadWriter, bufSize int) {
	buf := make([]byte, bufSize)
	for {
		n, err := rw.Read(buf)
		if err != nil {
			return
		}
		if _, err := rw.Write(buf[:n]); err != nil {
			return
		}
	}
}
