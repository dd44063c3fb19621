package routing_test

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

func dialWS(t *testing.T, h *daemontest.Harness, path string) *websocket.Conn {
	t.Helper()
	url := strings.Replace(h.Base, "http://", "ws://", 1) + path
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { conn.Close() })
	if got := resp.Header.Get("Lunora-Instance"); got == "" {
		t.Errorf("101 response without lunora-instance")
	}
	return conn
}

// roundTrip sends one message and expects it echoed as is.
func roundTrip(t *testing.T, conn *websocket.Conn, typ int, msg []byte) {
	t.Helper()
	if err := conn.WriteMessage(typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	gotTyp, got, err := conn.ReadMessage()
	if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
		t.Fatalf("echo of a %d-byte message (type %d): %d bytes of type %d, %v", len(msg), typ, len(got), gotTyp, err)
	}
}

// Frames flow both ways through the proxy as they are sent: each message is
// echoed before the next is written, so nothing may wait for a buffer to
// fill; a client close is answered with the app's close frame.
func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	for _, path := range []string{getPath("web", "chat%2F1") + "/ws", anyPath("web") + "/ws", poolPath("web") + "/ws"} {
		conn := dialWS(t, h, path)
		roundTrip(t, conn, websocket.TextMessage, []byte("one"))
		roundTrip(t, conn, websocket.BinaryMessage, []byte{0, 1, 2, 255})
		roundTrip(t, conn, websocket.TextMessage, bytes.Repeat([]byte("z"), 200_000))
		roundTrip(t, conn, websocket.TextMessage, []byte("x")) // a tiny frame right after a large one

		if err := conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		_, _, err := conn.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Errorf("%s: after the client's close, read = %v, want the app's close 1000", path, err)
		}
	}
	owned := daemontest.Owned(t, h.Config)
	found := false
	for _, c := range owned {
		found = found || c.Instance == "chat/1"
	}
	if !found {
		t.Errorf("no container for instance chat/1: %+v", owned)
	}
}

// A container that dies while a WebSocket to it is open (destroyed through
// the control plane, or crashing on its own) ends the client's connection
// promptly with a close frame, code 1000, which is what Cloudflare's
// library turns the container's abnormal end into: not a hang, and not a
// bare TCP close read as 1006. The instance then serves new connections
// from a fresh container.
func TestWebSocketClosedWhenTheContainerDies(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	kill := map[string]func(t *testing.T, id string){
		"destroyed": func(t *testing.T, id string) {
			if resp, body := h.Do(t, http.MethodPost, "/v1/containers/web/instances/"+id+"/destroy", nil, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("destroy: %d %s", resp.StatusCode, body)
			}
		},
		"crashed": func(t *testing.T, id string) {
			resp, body := h.Do(t, http.MethodGet, getPath("web", id)+"/crash", nil, http.Header{"Lunora-Attempts": {"1"}})
			if resp.StatusCode != http.StatusInternalServerError || body != bodyDisconnected {
				t.Fatalf("crash: %d %q", resp.StatusCode, body)
			}
		},
	}
	for how, die := range kill {
		t.Run(how, func(t *testing.T) {
			id := "ws-" + how
			conn := dialWS(t, h, getPath("web", id)+"/ws")
			roundTrip(t, conn, websocket.TextMessage, []byte("before"))
			die(t, id)
			// The read must end because the connection closed, well before
			// this deadline; a timeout here is the hang under test.
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, _, err := conn.ReadMessage()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the client's WebSocket hung after its container died")
			}
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Errorf("read after the container %s = %v, want a close frame with code 1000", how, err)
			}
			if how == "crashed" {
				return // the next start waits out the crash backoff; destroyed shows the restart
			}
			again := dialWS(t, h, getPath("web", id)+"/ws")
			roundTrip(t, again, websocket.TextMessage, []byte("after"))
		})
	}
}
