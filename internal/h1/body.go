package h1

import (
	"io"
	"net/http"
)

// NewBody returns the body of a message with Content-Length n read from r,
// behaving as net/http's body for such a message: reads stop at n with
// io.EOF (returned with the last bytes), r ending early gives
// io.ErrUnexpectedEOF, and reads after Close give http.ErrBodyReadAfterClose.
// Close reads the rest to its end, so r can carry the next message, unless
// closing says the connection is not reused. It is not safe for concurrent
// use.
func NewBody(r io.Reader, n int64, closing bool) io.ReadCloser {
	return &body{src: r, remaining: n, closing: closing}
}

type body struct {
	src       io.Reader
	remaining int64
	closing   bool
	sawEOF    bool
	closed    bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.remaining <= 0 {
		b.sawEOF = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.src.Read(p)
	b.remaining -= int64(n)
	switch {
	case err == io.EOF:
		b.sawEOF = true
		if b.remaining > 0 {
			err = io.ErrUnexpectedEOF
		}
	case err == nil && n > 0 && b.remaining == 0:
		// With the last bytes, so the caller can reuse the connection
		// without another read.
		b.sawEOF = true
		err = io.EOF
	}
	return n, err
}

func (b *body) Close() error {
	if b.closed {
		return nil
	}
	var err error
	if !b.sawEOF && !b.closing {
		_, err = io.Copy(io.Discard, b)
	}
	b.closed = true
	return err
}
