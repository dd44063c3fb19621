package httpfront_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/httpfront"
	"github.com/lunora/lunorad/internal/leakcheck"
)

// TestMain fails the package when goroutines outlive the tests: every
// connection goroutine, watcher and fallback goroutine must end with Close.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// ioTimeout bounds every network wait of a test; reaching it is a failure.
const ioTimeout = 5 * time.Second

var discardLog = log.New(io.Discard, "", 0)

// recorder notes, per request, which writer served it: net/http's writer is
// an http.Hijacker, httpfront's lean writer is not.
type recorder struct {
	// mu guards served.
	mu     sync.Mutex
	served []string
}

func (r *recorder) note(path string, w http.ResponseWriter) {
	_, hijack := w.(http.Hijacker)
	who := "lean"
	if hijack {
		who = "nethttp"
	}
	r.mu.Lock()
	r.served = append(r.served, path+" "+who)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.served...)
}

// routes dispatches on the exact path; unknown paths answer 404 "no route".
func routes(rec *recorder, table map[string]http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/probe" {
			_, _ = io.WriteString(w, "probe")
			return
		}
		if rec != nil {
			rec.note(r.URL.Path, w)
		}
		h, ok := table[r.URL.Path]
		if !ok {
			http.Error(w, "no route", http.StatusNotFound)
			return
		}
		h(w, r)
	})
}

// startPlain serves h with a plain net/http server on loopback.
func startPlain(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: discardLog, ReadHeaderTimeout: ioTimeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("plain Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// frontServer is a running httpfront.Server.
type frontServer struct {
	srv  *httpfront.Server
	addr string
	done chan error // Serve's result
	once sync.Once
	err  error // Serve's result, once read
}

// startFront serves h with httpfront (fallback on the same handler); take
// nil means every plain request is taken; options adjust the server before
// it starts. Cleanup closes it.
func startFront(t *testing.T, h http.Handler, take func(*http.Request) bool, options ...func(*httpfront.Server)) *frontServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newFront(h)
	srv.Take = take
	fs := &frontServer{
		srv:  srv,
		addr: ln.Addr().String(),
		done: make(chan error, 1),
	}
	for _, o := range options {
		o(fs.srv)
	}
	go func() { fs.done <- fs.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = fs.srv.Close()
		if err := fs.serveResult(); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("front Serve: %v", err)
		}
	})
	return fs
}

// serveResult waits (bounded) for Serve to return and gives its error.
func (fs *frontServer) serveResult() error {
	fs.once.Do(func() {
		select {
		case fs.err = <-fs.done:
		case <-time.After(ioTimeout):
			fs.err = errors.New("Serve did not return")
		}
	})
	return fs.err
}

// newFront is an httpfront server on h with a net/http fallback on h.
func newFront(h http.Handler) *httpfront.Server {
	return &httpfront.Server{
		Handler:  h,
		Fallback: &http.Server{Handler: h, ErrorLog: discardLog, ReadHeaderTimeout: ioTimeout},
	}
}

// step is one write of raw request bytes followed by reading one response
// per entry of methods (the request method decides whether a body follows).
type step struct {
	raw     string
	methods []string
}

func get(raw string) step { return step{raw: raw, methods: []string{"GET"}} }

// probeRequest is sent after the scripted steps when the connection still
// looks open: a kept-alive connection answers it and then closes, a closed
// one does not, so the transcript records whether the server kept the
// connection without waiting on a timer.
const probeRequest = "GET /probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"

// transcript plays steps on a fresh connection to addr and returns every
// byte the server wrote until it closed the connection, with the Date
// header values replaced, followed by notes on read errors.
func transcript(t *testing.T, addr string, steps ...step) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	var captured bytes.Buffer
	br := bufio.NewReader(io.TeeReader(conn, &captured))
	var notes []string
	open := true
	for si, st := range steps {
		if !open {
			break
		}
		if _, err := io.WriteString(conn, st.raw); err != nil {
			notes = append(notes, fmt.Sprintf("step %d: write failed", si))
			open = false
			break
		}
		for ri, m := range st.methods {
			// A response announcing Connection: close is not trusted:
			// the probe shows whether the connection really closed.
			if err := readResponse(br, m); err != nil {
				notes = append(notes, fmt.Sprintf("step %d response %d: %s", si, ri, errKind(err)))
				open = false
				break
			}
		}
	}
	if open {
		// A failed write shows in the read below.
		_, _ = io.WriteString(conn, probeRequest)
	} else {
		// A response the client could not parse may leave the connection
		// open: hang up our side so the server ends it.
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	// EOF and reset both mean closed here (which one a client sees
	// depends on timing), so only a timeout is noted.
	if _, err := io.Copy(io.Discard, br); err != nil && errKind(err) != "closed" {
		notes = append(notes, "final read: "+errKind(err))
	}
	out := normalizeDate(captured.String())
	if len(notes) > 0 {
		out += "\n--notes--\n" + strings.Join(notes, "\n")
	}
	return out
}

// readResponse reads one final response (skipping 1xx other than 101) and
// its whole body.
func readResponse(br *bufio.Reader, method string) error {
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return nil
	}
}

// errKind folds the ways a closed connection shows up (EOF, reset, broken
// pipe) into one word, and keeps timeouts distinct: a timeout means the
// server kept a connection open that net/http would have closed, or the
// reverse.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "TIMEOUT"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "broken pipe"):
		return "closed"
	default:
		return "error"
	}
}

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r$`)

func normalizeDate(s string) string {
	return dateLine.ReplaceAllString(s, "Date: <date>\r")
}

// compareServers plays the same steps against a plain net/http server and an
// httpfront server built on the same handler and fails on any byte difference.
func compareServers(t *testing.T, plainAddr, frontAddr string, steps ...step) {
	t.Helper()
	want := transcript(t, plainAddr, steps...)
	got := transcript(t, frontAddr, steps...)
	if got != want {
		t.Errorf("bytes differ from net/http at byte %d\nnet/http:  %s\nhttpfront: %s", firstDiff(want, got), abbreviate(want), abbreviate(got))
	}
}

func firstDiff(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// abbreviate quotes s, shortening long runs of one repeated byte (bodies).
func abbreviate(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if j-i > 8 {
			fmt.Fprintf(&b, "%s<%d more %q>", strings.Repeat(string(s[i]), 3), j-i-3, s[i])
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	q := fmt.Sprintf("%q", b.String())
	if len(q) > 1500 {
		q = q[:1500] + "...(truncated)"
	}
	return q
}
