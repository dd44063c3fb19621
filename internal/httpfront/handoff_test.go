package httpfront_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handoffHandlers adds a hijacking echo (a WebSocket stand-in) to the
// equivalence handlers.
func handoffHandlers() map[string]http.HandlerFunc {
	table := equivalenceHandlers()
	table["/ws"] = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "cannot hijack", http.StatusInternalServerError)
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		// Echo lines until the client hangs up.
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString("echo " + line)
			_ = rw.Flush()
		}
	}
	return table
}

// takeUnlessMarked is the Take of the handoff tests: a request carrying
// X-Fallback goes to the fallback.
func takeUnlessMarked(r *http.Request) bool { return r.Header.Get("X-Fallback") == "" }

func TestHandoff(t *testing.T) {
	table := handoffHandlers()
	plain := startPlain(t, routes(nil, table))
	rec := &recorder{}
	front := startFront(t, routes(rec, table), takeUnlessMarked)

	first := get(req("GET", "/small"))
	after := get(req("GET", "/cl"))
	cases := []struct {
		name    string
		special step
		// servedAfter: the special request reaches the handler (some are
		// refused by net/http itself before any handler runs).
		servedAfter bool
	}{
		{"upgrade without hijack", get(req("GET", "/echo", "Upgrade: websocket\r\nConnection: Upgrade\r\n")), true},
		{"upgrade h2c", get(req("GET", "/echo", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")), true},
		{"expect 100-continue", step{raw: req("POST", "/read-body", "Content-Length: 5\r\nExpect: 100-continue\r\n") + "hello", methods: []string{"POST"}}, true},
		{"expect 100-continue unread", step{raw: req("POST", "/ignore-body", "Content-Length: 5\r\nExpect: 100-continue\r\n"), methods: []string{"POST"}}, true},
		{"expect unknown", get(req("GET", "/echo", "Expect: something\r\n")), false},
		{"chunked body", get(req("POST", "/read-body", "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n"), true},
		{"chunked body with trailer", get(req("POST", "/echo", "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n") + "5\r\nhello\r\n0\r\nX-T: v\r\n\r\n"), true},
		{"100 KiB body read", get(req("POST", "/read-body", "Content-Length: 102400\r\n") + strings.Repeat("y", 100<<10)), true},
		{"100 KiB body unread", get(req("POST", "/ignore-body", "Content-Length: 102400\r\n") + strings.Repeat("y", 100<<10)), true},
		{"two Host headers", get("GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), false},
		{"missing Host", get("GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n"), false},
		{"malformed header line", get("GET /echo HTTP/1.1\r\nHost: x\r\nBad Line\r\n\r\n"), false},
		{"malformed request line", get("GET /echo\r\nHost: x\r\n\r\n"), false},
		{"unsupported version", get("GET /echo HTTP/1.2\r\nHost: x\r\n\r\n"), false},
		{"HTTP/1.0", get("GET /echo HTTP/1.0\r\nHost: x\r\n\r\n"), true},
		{"HTTP/1.0 keep-alive", get("GET /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"), true},
		{"HTTP/1.0 keep-alive big", get("GET /big HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"), true},
		{"Take declines", get(req("GET", "/echo", "X-Fallback: 1\r\n")), true},
		{"Take declines POST", get(req("POST", "/read-body", "X-Fallback: 1\r\nContent-Length: 5\r\n") + "hello"), true},
		{"content-length and chunked", get(req("POST", "/read-body", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n"), false},
		{"Take declines HEAD", step{raw: req("HEAD", "/big", "X-Fallback: 1\r\n"), methods: []string{"HEAD"}}, true},
		{"bare LF", get("GET /echo HTTP/1.1\nHost: x\n\n"), true},
		{"obs-fold", get(req("GET", "/echo", "X-A: a\r\n b\r\n")), true},
		{"head over 16 KiB", get(req("GET", "/echo", "X-Big: "+strings.Repeat("h", 20<<10)+"\r\n")), true},
		{"CONNECT", get("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"), true},
		{"transfer-encoding identity", get(req("POST", "/echo", "Transfer-Encoding: identity\r\nContent-Length: 2\r\n") + "ab"), false},
		{"body one byte over 64 KiB", get(req("POST", "/read-body", "Content-Length: 65537\r\n") + strings.Repeat("q", 64<<10+1)), true},
		{"negative content-length", get(req("POST", "/echo", "Content-Length: -1\r\n")), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.list())
			compareServers(t, plain, front.addr, first, c.special, after)
			served := rec.list()[before:]
			if len(served) == 0 || served[0] != "/small lean" {
				t.Fatalf("first plain request not served by httpfront: %v", served)
			}
			for _, s := range served[1:] {
				if strings.HasSuffix(s, " lean") {
					t.Errorf("after the handoff a request was served by httpfront, want the fallback: %v", served)
				}
			}
			if c.servedAfter && len(served) < 2 {
				t.Errorf("the special request never reached the handler: %v", served)
			}
		})
		// The same three requests in one write: the bytes httpfront has
		// already read (the special request and the one after it) must
		// reach the fallback intact.
		t.Run(c.name+" pipelined", func(t *testing.T) {
			before := len(rec.list())
			methods := append(append(append([]string{}, first.methods...), c.special.methods...), after.methods...)
			compareServers(t, plain, front.addr, step{raw: first.raw + c.special.raw + after.raw, methods: methods})
			if served := rec.list()[before:]; len(served) == 0 || served[0] != "/small lean" {
				t.Fatalf("first plain request not served by httpfront: %v", served)
			}
		})
	}
}

// TestHandoffSplitHead: a head arriving in pieces is still served here.
func TestHandoffSplitHead(t *testing.T) {
	table := equivalenceHandlers()
	plain := startPlain(t, routes(nil, table))
	rec := &recorder{}
	front := startFront(t, routes(rec, table), nil)
	compareServers(t, plain, front.addr,
		step{raw: "GET /sm"},
		step{raw: "all HTTP/1.1\r\nHo"},
		step{raw: "st: x\r\n\r"},
		get("\n"),
		step{raw: req("POST", "/read-body", "Content-Length: 5\r\n") + "he"},
		get("llo"),
	)
	if got := rec.list(); len(got) != 2 || got[0] != "/small lean" || got[1] != "/read-body lean" {
		t.Errorf("served = %v, want both requests served by httpfront", got)
	}
}

// TestHandoffHugeHead: a head over net/http's limit gets its 431 from the
// fallback, as from net/http.
func TestHandoffHugeHead(t *testing.T) {
	table := equivalenceHandlers()
	plain := startPlain(t, routes(nil, table))
	front := startFront(t, routes(nil, table), nil)
	huge := req("GET", "/echo", "X-Big: "+strings.Repeat("h", 1<<20+8192)+"\r\n")
	want := transcript(t, plain, get(huge))
	got := transcript(t, front.addr, get(huge))
	if !strings.HasPrefix(want, "HTTP/1.1 431 ") {
		t.Fatalf("net/http answered %s, want a 431 (test assumption)", abbreviate(want))
	}
	if got != want {
		t.Errorf("bytes differ from net/http\nnet/http:  %s\nhttpfront: %s", abbreviate(want), abbreviate(got))
	}
}

// TestWebSocketUpgrade: after a request served here, an upgrade on the same
// connection is handed off, hijacked by the handler, and carries data both
// ways.
func TestWebSocketUpgrade(t *testing.T) {
	rec := &recorder{}
	front := startFront(t, routes(rec, handoffHandlers()), nil)
	conn, err := net.DialTimeout("tcp", front.addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(conn)

	if _, err := io.WriteString(conn, req("GET", "/small")); err != nil {
		t.Fatal(err)
	}
	if err := readResponse(br, "GET"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, req("GET", "/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade answered %d %v", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"ping\n", "second message\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != "echo "+msg {
			t.Errorf("echo = %q, want %q", line, "echo "+msg)
		}
	}
	if got := rec.list(); len(got) != 2 || got[0] != "/small lean" || got[1] != "/ws nethttp" {
		t.Errorf("served = %v, want /small here and /ws by the fallback", got)
	}
}

// TestServedHere: plain requests stay on the lean path (with net/http's
// bytes), whatever their body holds and whatever follows them.
func TestServedHere(t *testing.T) {
	table := equivalenceHandlers()
	plain := startPlain(t, routes(nil, table))
	rec := &recorder{}
	front := startFront(t, routes(rec, table), nil)
	post := func(body string) string {
		return req("POST", "/read-body", "Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n") + body
	}
	cases := []struct {
		name  string
		steps []step
		lean  int // requests that must be served here
	}{
		{"GET", []step{get(req("GET", "/small"))}, 1},
		{"HEAD", []step{{raw: req("HEAD", "/small"), methods: []string{"HEAD"}}}, 1},
		{"body with LF", []step{get(post("{\n  \"a\": 1\n}\n"))}, 1},
		{"body with CRLFCRLF", []step{get(post("a\r\n\r\nb"))}, 1},
		{"body then pipelined GET", []step{{raw: post("x\ny") + req("GET", "/small"), methods: []string{"POST", "GET"}}}, 2},
		{"delete with body", []step{get(req("DELETE", "/read-body", "Content-Length: 3\r\n") + "a\nb")}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.list())
			compareServers(t, plain, front.addr, c.steps...)
			served := rec.list()[before:]
			lean := 0
			for _, s := range served {
				if strings.HasSuffix(s, " lean") {
					lean++
				}
			}
			if lean != c.lean {
				t.Errorf("served = %v, want %d served by httpfront", served, c.lean)
			}
		})
	}
}
