package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame builds one WebSocket frame (masked with a zero key when masked).
func frame(opcode byte, payload []byte, masked bool) []byte {
	f := []byte{0x80 | opcode}
	maskBit := byte(0)
	if masked {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, maskBit|byte(n))
	case n <= 0xFFFF:
		f = append(f, maskBit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, maskBit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if masked {
		f = append(f, 0, 0, 0, 0) // a zero key leaves the payload as is
	}
	return append(f, payload...)
}

func TestWSFramesFindsBoundariesInAnyChunking(t *testing.T) {
	frames := [][]byte{
		frame(0x1, []byte("hi"), false),
		frame(0x2, bytes.Repeat([]byte{7}, 300), false),    // 16-bit length
		frame(0x2, bytes.Repeat([]byte{9}, 70_000), false), // 64-bit length
		frame(0x1, []byte("masked"), true),
		frame(0x9, nil, false), // ping, empty
		frame(0x1, nil, false),
	}
	var stream []byte
	ends := map[int]bool{} // stream offsets where a frame ends
	for _, f := range frames {
		stream = append(stream, f...)
		ends[len(stream)] = true
	}
	for _, chunk := range []int{1, 2, 3, 7, 1000, len(stream)} {
		var w wsFrames
		for off := 0; off < len(stream); {
			n := min(chunk, len(stream)-off)
			w.feed(stream[off : off+n])
			off += n
			if got := w.atBoundary(); got != ends[off] {
				t.Fatalf("chunks of %d: at offset %d atBoundary = %v, want %v", chunk, off, got, ends[off])
			}
		}
		if w.closeSeen {
			t.Fatalf("chunks of %d: a close frame was seen in a stream without one", chunk)
		}
	}

	var w wsFrames
	closing := frame(wsOpClose, []byte{0x03, 0xE8}, false)
	w.feed(closing[:1])
	if w.closeSeen {
		t.Fatal("close seen from its first byte alone")
	}
	w.feed(closing[1:])
	if !w.closeSeen || !w.atBoundary() {
		t.Fatalf("after a close frame: closeSeen %v, atBoundary %v", w.closeSeen, w.atBoundary())
	}
}

// rawWSBackend completes the WebSocket handshake, writes raw bytes and
// closes the TCP connection, as a container that dies (or misbehaves) would.
func rawWSBackend(t *testing.T, raw []byte) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn := c.NetConn()
		if _, err := conn.Write(raw); err != nil {
			t.Errorf("backend write: %v", err)
		}
		conn.Close()
	})
}

// readClose reads until the connection ends and returns the close code the
// client saw (1006 when no close frame came).
func readClose(t *testing.T, c *websocket.Conn) (code int, text string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read = %v, want a close", err)
		}
		return ce.Code, ce.Text
	}
}

func TestWebSocketClientGetsACloseFrameWhenTheContainerSideEnds(t *testing.T) {
	cases := []struct {
		name     string
		raw      []byte
		wantCode int
	}{
		// The container died (or closed) between frames: the client gets
		// Cloudflare's 1000 instead of an abnormal 1006.
		{"at a boundary", frame(0x1, []byte("last words"), false), wsCloseNormal},
		{"before any frame", nil, wsCloseNormal},
		// Its own close frame passes through unchanged, nothing is added.
		{"with its own close", frame(wsOpClose, []byte{0x0F, 0xA1, 'b', 'y', 'e'}, false), 4001},
		// Mid-frame nothing can be added without corrupting the stream.
		{"mid-frame", frame(0x1, []byte("cut short"), false)[:5], websocket.CloseAbnormalClosure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, rawWSBackend(t, c.raw))
			conn, _ := dialWS(t, e, "a")
			if code, text := readClose(t, conn); code != c.wantCode {
				t.Errorf("client saw close %d %q, want %d", code, text, c.wantCode)
			}
		})
	}
}

func TestWebSocketCloseCodeWhenTheInstanceStopsOrTheRouterCloses(t *testing.T) {
	t.Run("instance stopped", func(t *testing.T) {
		e := newEnv(t, echoBackend(t))
		c, _ := dialWS(t, e, "a")
		if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		close(e.instances.done)
		if code, text := readClose(t, c); code != wsCloseNormal || text != "" {
			t.Errorf("client saw close %d %q, want %d", code, text, wsCloseNormal)
		}
	})
	t.Run("router closing", func(t *testing.T) {
		e := newEnv(t, echoBackend(t))
		c, _ := dialWS(t, e, "a")
		if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		e.router.CloseWebSockets()
		if code, text := readClose(t, c); code != wsCloseGoingAway || text != errRouterClosed.Error() {
			t.Errorf("client saw close %d %q, want %d %q", code, text, wsCloseGoingAway, errRouterClosed.Error())
		}
	})
}
