package httpfront_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkSmallGET: one keep-alive connection, a small GET at a time,
// served by net/http and by httpfront's lean path.
func BenchmarkSmallGET(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	})
	run := func(b *testing.B, addr string) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		raw := []byte(req("GET", "/"))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := conn.Write(raw); err != nil {
				b.Fatal(err)
			}
			if err := readResponse(br, "GET"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("nethttp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h, ErrorLog: discardLog}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		run(b, ln.Addr().String())
	})
	b.Run("httpfront", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := newFront(h)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		defer func() { _ = srv.Close(); <-done }()
		run(b, ln.Addr().String())
	})
}
