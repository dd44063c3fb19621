package router

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoBackend is a WebSocket echo "container".
func echoBackend(t *testing.T) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "container" {
			t.Errorf("upgrade Host = %q", r.Host)
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	})
}

func dialWS(t *testing.T, e *env, id string) (*websocket.Conn, *http.Response) {
	t.Helper()
	u := "ws://" + e.server.Listener.Addr().String() + "/v1/containers/web/instances/" + id + "/fetch/echo"
	c, res, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, res
}

func TestWebSocketEchoThroughTheProxy(t *testing.T) {
	e := newEnv(t, echoBackend(t))
	c, res := dialWS(t, e, "chat%2F1")
	if got := res.Header.Get("Lunora-Instance"); got != "chat%2F1" {
		t.Errorf("lunora-instance = %q", got)
	}
	for _, msg := range []string{"hello", strings.Repeat("z", 100_000)} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != msg {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
	}
	l := e.instances.lastLease()
	if l.touches.Load() == 0 {
		t.Error("WebSocket bytes did not touch the lease")
	}
	if l.releases.Load() != 0 {
		t.Error("lease released while the WebSocket is open")
	}
	c.Close()
	select {
	case <-l.released:
	case <-time.After(5 * time.Second):
		t.Fatal("lease not released when the WebSocket ended")
	}
}

// waitClosed reads until the connection fails and checks it was closed,
// not timed out.
func waitClosed(t *testing.T, c *websocket.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read = %v, want the connection closed", err)
	}
}

func TestWebSocketClosedWhenTheContainerStops(t *testing.T) {
	e := newEnv(t, echoBackend(t))
	c, _ := dialWS(t, e, "a")
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	close(e.instances.done)
	waitClosed(t, c)
	select {
	case <-e.instances.lastLease().released:
	case <-time.After(5 * time.Second):
		t.Fatal("lease not released")
	}
}

func TestCloseWebSockets(t *testing.T) {
	e := newEnv(t, echoBackend(t))
	c, _ := dialWS(t, e, "a")
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	e.router.CloseWebSockets()
	waitClosed(t, c)
	// Plain requests still go through: the echo app refuses a non-upgrade
	// request with its own 400, which passes through.
	if r := e.get("/v1/containers/web/instances/a/fetch/"); r.status != http.StatusBadRequest || !strings.Contains(r.body, "Bad Request") {
		t.Errorf("plain request after CloseWebSockets: %d %q", r.status, r.body)
	}
}
