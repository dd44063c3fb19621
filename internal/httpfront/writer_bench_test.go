package httpfront

import (
	"bufio"
	"io"
	"net/http"
	"testing"
)

// BenchmarkWriteHeaderProxied is the header of a proxied response, as the
// router hands it over: complete, so it is written at WriteHeader.
func BenchmarkWriteHeaderProxied(b *testing.B) {
	c := &conn{s: &Server{}, bw: bufio.NewWriterSize(io.Discard, writeBufferSize)}
	req, _ := http.NewRequest(http.MethodGet, "/greet", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := c.newResponse(req)
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Date"] = []string{"Sat, 28 Nov 2026 16:00:00 GMT"}
		h["Content-Length"] = []string{"12"}
		h["Lunora-Instance"] = []string{"a"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("hello, you!\n"))
		w.finish()
	}
}
