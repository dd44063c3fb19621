package router

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
)

// WebSocket close codes the router sends itself (RFC 6455 §7.4.1).
const (
	wsCloseNormal    = 1000 // the container side ended: what Cloudflare's client sees
	wsCloseGoingAway = 1001 // lunorad is shutting down
	wsOpClose        = 0x8
)

// withWebSocketClose wraps the container side of a proxied WebSocket so that
// the client gets a close frame when that side ends without one.
// Other upgraded protocols are passed through untouched.
func withWebSocketClose(res *http.Response, backend io.ReadWriteCloser) io.ReadWriteCloser {
	if !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") {
		return backend
	}
	return &wsConn{ReadWriteCloser: backend, ctx: res.Request.Context()}
}

// wsConn is the container side of a proxied WebSocket. It follows the
// frames the container sends so that, when that side ends without a close
// frame (the container died, or its instance was stopped and the tunnel
// cut), the client gets one at a frame boundary instead of a bare TCP
// close: Cloudflare's library turns the 1005/1006 such a client would
// otherwise see into 1000 (cloudflare-containers.md §3). A connection that
// ends mid-frame is passed on as it is: a frame cannot be cut short.
//
// Read is only called by ReverseProxy's one copier goroutine for this
// direction, so the parser and tail need no lock.
type wsConn struct {
	io.ReadWriteCloser
	// ctx is the attempt's; its cause tells a shutdown from a stop.
	ctx    context.Context
	frames wsFrames
	// tail, once set, is what Read returns instead of reading: the close
	// frame, then the error that ended the container side.
	tail io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) {
	if c.tail != nil {
		return c.tail.Read(p)
	}
	n, err := c.ReadWriteCloser.Read(p)
	c.frames.feed(p[:n])
	if err == nil || c.frames.closeSeen || !c.frames.atBoundary() {
		return n, err
	}
	code, reason := wsCloseNormal, ""
	if context.Cause(c.ctx) == errRouterClosed {
		code, reason = wsCloseGoingAway, errRouterClosed.Error()
	}
	c.frames.closeSeen = true
	c.tail = io.MultiReader(bytes.NewReader(wsCloseFrame(code, reason)), errReader{err})
	if n > 0 {
		return n, nil // the bytes first; the next Read returns the frame
	}
	return c.tail.Read(p)
}

// wsCloseFrame is an unmasked (server-to-client) close frame; reason must
// fit a control frame (123 bytes).
func wsCloseFrame(code int, reason string) []byte {
	f := []byte{0x80 | wsOpClose, byte(2 + len(reason))}
	f = binary.BigEndian.AppendUint16(f, uint16(code))
	return append(f, reason...)
}

// errReader returns err on every Read.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// wsFrames tracks WebSocket frame boundaries in one direction of a stream
// (RFC 6455 §5.2) without buffering or copying the payload.
type wsFrames struct {
	head      [14]byte // the header of the frame being read, so far
	headLen   int
	remaining uint64 // payload bytes of the current frame still to come
	closeSeen bool   // a close frame went by; nothing is added after it
}

// feed advances the tracker over the next bytes of the stream.
func (f *wsFrames) feed(p []byte) {
	for len(p) > 0 {
		if f.remaining > 0 {
			n := min(uint64(len(p)), f.remaining)
			f.remaining -= n
			p = p[n:]
			continue
		}
		f.head[f.headLen] = p[0]
		f.headLen++
		p = p[1:]
		if f.headLen < 2 || f.headLen < f.headerSize() {
			continue
		}
		if f.head[0]&0x0F == wsOpClose {
			f.closeSeen = true
		}
		f.remaining = f.payloadLen()
		f.headLen = 0
	}
}

// atBoundary reports whether the stream so far ends between frames.
func (f *wsFrames) atBoundary() bool { return f.headLen == 0 && f.remaining == 0 }

// headerSize is the full header length; it needs the first two bytes.
func (f *wsFrames) headerSize() int {
	n := 2
	switch f.head[1] & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.head[1]&0x80 != 0 { // masked
		n += 4
	}
	return n
}

// payloadLen decodes the payload length of a complete header.
func (f *wsFrames) payloadLen() uint64 {
	switch n := f.head[1] & 0x7F; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(f.head[2:4]))
	case 127:
		return binary.BigEndian.Uint64(f.head[2:10])
	default:
		return uint64(n)
	}
}
