package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// bodyStep is one observed Read or Close.
type bodyStep struct {
	n    int
	data string
	err  error
}

// exercise reads body with reads of size each, closing it after closeAfter
// reads (or at the first error), and two reads more; it returns what it saw
// and how many source bytes were left unread.
func exercise(body io.ReadCloser, size, closeAfter int, unread func() int) ([]bodyStep, int) {
	var steps []bodyStep
	p := make([]byte, size)
	for i := 0; ; i++ {
		if i == closeAfter {
			steps = append(steps, bodyStep{n: -1, err: body.Close()})
			break
		}
		n, err := body.Read(p)
		steps = append(steps, bodyStep{n: n, data: string(p[:n]), err: err})
		if err != nil && i > closeAfter+3 {
			break
		}
	}
	for range 2 {
		n, err := body.Read(p)
		steps = append(steps, bodyStep{n: n, err: err})
	}
	return steps, unread()
}

// sources wraps a body's bytes as a connection might deliver them.
var sources = map[string]func(string) io.Reader{
	"whole":    func(s string) io.Reader { return strings.NewReader(s) },
	"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
	"timeout":  func(s string) io.Reader { return iotest.TimeoutReader(strings.NewReader(s)) },
	"failing": func(s string) io.Reader {
		return io.MultiReader(strings.NewReader(s), iotest.ErrReader(io.ErrClosedPipe))
	},
}

// TestBodyMatchesNetHTTP reads the same Content-Length bodies through
// net/http's response body and NewBody, in many ways, and compares every
// result, error and the bytes Close left unread.
func TestBodyMatchesNetHTTP(t *testing.T) {
	const payload = "0123456789abcdefghij"
	for _, length := range []int{1, 5, 12} {
		for _, sent := range []int{0, 1, length - 1, length, length + 3} {
			for _, closing := range []bool{false, true} {
				head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n", length)
				if closing {
					head += "Connection: close\r\n"
				}
				wire := head + "\r\n" + payload[:sent]
				for name, source := range sources {
					for _, size := range []int{1, 2, 7, 64} {
						for closeAfter := range 6 {
							label := fmt.Sprintf("%q %s size %d close after %d", wire, name, size, closeAfter)
							want, wantUnread := netHTTPBody(t, wire, source, size, closeAfter)
							got, gotUnread := h1Body(t, wire, source, size, closeAfter)
							if fmt.Sprint(got) != fmt.Sprint(want) {
								t.Fatalf("%s:\n got  %v\n want %v", label, got, want)
							}
							if gotUnread != wantUnread {
								t.Fatalf("%s: %d bytes left unread, net/http leaves %d", label, gotUnread, wantUnread)
							}
						}
					}
				}
			}
		}
	}
}

func netHTTPBody(t *testing.T, wire string, source func(string) io.Reader, size, closeAfter int) ([]bodyStep, int) {
	src := source(wire)
	br := bufio.NewReader(src)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exercise(res.Body, size, closeAfter, func() int { return br.Buffered() + remaining(src) })
}

func h1Body(t *testing.T, wire string, source func(string) io.Reader, size, closeAfter int) ([]bodyStep, int) {
	src := source(wire)
	br := bufio.NewReader(src)
	// Buffer the head as a connection's reader would have before
	// ParseResponse looks at what is buffered.
	buf, _ := br.Peek(1)
	for !bytes.Contains(buf, crlfcrlf) {
		if _, err := br.Peek(len(buf) + 1); err != nil {
			t.Fatal(err)
		}
		buf, _ = br.Peek(br.Buffered())
	}
	buf, _ = br.Peek(br.Buffered())
	res, headLen, ok := ParseResponse(buf, nil)
	if !ok {
		t.Fatalf("declined %q", buf)
	}
	if _, err := br.Discard(headLen); err != nil {
		t.Fatal(err)
	}
	body := NewBody(br, res.ContentLength, res.Close)
	return exercise(body, size, closeAfter, func() int { return br.Buffered() + remaining(src) })
}

// remaining counts the bytes src has not delivered, by reading them.
func remaining(src io.Reader) int {
	n, _ := io.Copy(io.Discard, src)
	return int(n)
}

// A source returning its last bytes together with io.EOF.
func TestBodyEOFWithData(t *testing.T) {
	for _, tc := range []struct {
		length   int64
		src      string
		wantErr  error
		wantRead int
	}{
		{length: 5, src: "hello", wantErr: io.EOF, wantRead: 5},
		{length: 6, src: "hello", wantErr: io.ErrUnexpectedEOF, wantRead: 5},
		{length: 3, src: "hello", wantErr: io.EOF, wantRead: 3},
	} {
		body := NewBody(iotest.DataErrReader(strings.NewReader(tc.src)), tc.length, false)
		p := make([]byte, 16)
		n, err := body.Read(p)
		if n != tc.wantRead || err != tc.wantErr {
			t.Errorf("%d of %q: Read = %d, %v; want %d, %v", tc.length, tc.src, n, err, tc.wantRead, tc.wantErr)
		}
		if n, err := body.Read(p); n != 0 || err != io.EOF {
			t.Errorf("%d of %q: Read after the end = %d, %v; want 0, EOF", tc.length, tc.src, n, err)
		}
		if err := body.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := body.Read(p); err != http.ErrBodyReadAfterClose {
			t.Errorf("Read after Close: %v", err)
		}
	}
}
