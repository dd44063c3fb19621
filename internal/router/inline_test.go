package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
)

// These tests hold the inline forwarder (inline.go, upstream.go) to what
// httputil.ReverseProxy puts on the wire: every case runs through a router
// forwarding inline and through one with reverseProxyOnly set, against the
// same backend, and the two results must be identical.

// ioTimeout bounds every raw socket exchange of these tests.
const ioTimeout = 10 * time.Second

// forwardPath names one of the router's two proxy paths.
type forwardPath struct {
	name             string
	reverseProxyOnly bool
}

var forwardPaths = [...]forwardPath{{"inline", false}, {"reverseproxy", true}}

// newPathEnv is newEnv for a backend already listening on addr, with the
// router's proxy path chosen before the front server accepts anything.
func newPathEnv(t *testing.T, addr string, reverseProxyOnly bool) *env {
	t.Helper()
	e := &env{t: t, clock: newRecClock(), rand: &seqRand{}, bus: &events.Bus{}}
	e.instances = &fakeInstances{
		containers: map[string]*config.Container{"web": {Name: "web", DefaultPort: 8080}},
		addrs:      map[int]string{8080: addr},
		done:       make(chan struct{}),
	}
	e.control = newFakeControl(e.instances.containers)
	e.router = New(Options{Instances: e.instances, Control: e.control, Events: e.bus, Clock: e.clock, Rand: e.rand.IntN})
	e.router.reverseProxyOnly = reverseProxyOnly
	e.server = httptest.NewServer(e.router.Handler())
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		e.server.Close()
		e.router.Close()
	})
	return e
}

// newPathEnvs returns one env per proxy path, both in front of addr.
func newPathEnvs(t *testing.T, addr string) [len(forwardPaths)]*env {
	var envs [len(forwardPaths)]*env
	for i, p := range forwardPaths {
		envs[i] = newPathEnv(t, addr, p.reverseProxyOnly)
	}
	return envs
}

// rawBackend is a "container" on a bare TCP listener, so tests see and
// write the exact bytes of each exchange.
type rawBackend struct {
	ln      net.Listener
	serve   func(*rawConn)
	accepts atomic.Int64
	// ended receives one value per connection whose serve returned;
	// endedTotal counts them, after the send.
	ended      chan struct{}
	endedTotal atomic.Int64
	// done is closed at cleanup; serve functions that wait select on it.
	done chan struct{}
	wg   sync.WaitGroup

	// mu guards conns.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startRawBackend serves each accepted connection with serve on its own
// goroutine; cleanup closes everything and waits for those goroutines.
func startRawBackend(t *testing.T, serve func(*rawConn)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, serve: serve, ended: make(chan struct{}, 1024), done: make(chan struct{}),
		conns: make(map[net.Conn]struct{})}
	b.wg.Add(1)
	go b.acceptLoop()
	t.Cleanup(b.close)
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

func (b *rawBackend) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.accepts.Add(1)
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			rec := &recordingReader{r: c}
			b.serve(&rawConn{Conn: c, rec: rec, br: bufio.NewReader(rec), backend: b})
			_ = c.Close()
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			// Counted before it is announced: waitAllEnded, woken by the
			// announcement, must already see it in endedTotal.
			b.endedTotal.Add(1)
			b.ended <- struct{}{}
		}()
	}
}

func (b *rawBackend) close() {
	close(b.done)
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// waitEnded waits for n connections to end on the backend's side.
func (b *rawBackend) waitEnded(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.ended:
		case <-time.After(ioTimeout):
			t.Fatal("the backend's connection did not end")
		}
	}
}

// waitAllEnded waits until every accepted connection has ended and
// empties ended, so that a later waitEnded counts only new ends.
func (b *rawBackend) waitAllEnded(t *testing.T) {
	t.Helper()
	for b.endedTotal.Load() < b.accepts.Load() {
		select {
		case <-b.ended:
		case <-time.After(ioTimeout):
			t.Fatal("the backend's connections did not end")
		}
	}
	for {
		select {
		case <-b.ended:
		default:
			return
		}
	}
}

// rawConn is the backend side of one connection.
type rawConn struct {
	net.Conn
	rec     *recordingReader
	br      *bufio.Reader
	backend *rawBackend
}

// readRequest reads one request and its whole body, returning the exact
// bytes the request took on the wire.
func (c *rawConn) readRequest() (*http.Request, []byte, error) {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, nil, err
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return nil, nil, err
	}
	return req, c.rec.take(c.br.Buffered()), nil
}

func (c *rawConn) write(s string) error {
	_, err := io.WriteString(c.Conn, s)
	return err
}

// reset closes the connection with an RST instead of a FIN.
func (c *rawConn) reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
}

// recordingReader keeps every byte read through it until take.
type recordingReader struct {
	r   io.Reader
	buf []byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// take returns the bytes consumed so far, leaving the unconsumed tail
// (read ahead by a bufio.Reader) for the next take.
func (r *recordingReader) take(unconsumed int) []byte {
	n := len(r.buf) - unconsumed
	out := bytes.Clone(r.buf[:n])
	r.buf = append(r.buf[:0], r.buf[n:]...)
	return out
}

// rawRoundTrip sends a request written by hand to the front server and
// reads the response, so that headers net/http would not send (Trailer,
// Proxy-Connection) reach the router as written.
func rawRoundTrip(t *testing.T, e *env, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", e.server.Listener.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(request, " ")
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

const fetchPrefix = "/v1/containers/web/instances/a/fetch"

// TestInlineRequestWireMatchesReverseProxy compares the exact bytes the
// container receives from both paths.
func TestInlineRequestWireMatchesReverseProxy(t *testing.T) {
	got := make(chan []byte, 1)
	backend := startRawBackend(t, func(c *rawConn) {
		for {
			req, raw, err := c.readRequest()
			if err != nil {
				return
			}
			answer := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
			if req.Method == http.MethodHead {
				answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
			}
			select {
			case got <- raw:
			case <-c.backend.done:
				return
			}
			if c.write(answer) != nil {
				return
			}
		}
	})
	envs := newPathEnvs(t, backend.addr())

	const host = "Host: front.example\r\n"
	cases := []struct {
		name    string
		request string
		// must: substrings the forwarded request has to contain (or,
		// prefixed with "!", must not), so that equal bytes are also right.
		must []string
	}{
		{"get with query",
			"GET " + fetchPrefix + "/items?limit=10&q=a%20b&x HTTP/1.1\r\n" + host + "User-Agent: ua/1\r\nAccept: */*\r\n\r\n",
			[]string{"GET /items?limit=10&q=a%20b&x HTTP/1.1\r\n", "Host: container\r\n"}},
		{"force query",
			"GET " + fetchPrefix + "/items? HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET /items? HTTP/1.1\r\n"}},
		{"percent-encoded path",
			"GET " + fetchPrefix + "/a%2Fb/%E2%9C%93/c%20d/%7e HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET /a%2Fb/%E2%9C%93/c%20d/%7e HTTP/1.1\r\n"}},
		{"double slash path",
			"GET " + fetchPrefix + "//double//x?y=1 HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET //double//x?y=1 HTTP/1.1\r\n"}},
		{"empty path",
			"GET " + fetchPrefix + " HTTP/1.1\r\n" + host + "\r\n",
			[]string{"GET / HTTP/1.1\r\n"}},
		{"head",
			"HEAD " + fetchPrefix + "/h HTTP/1.1\r\n" + host + "\r\n",
			[]string{"HEAD /h HTTP/1.1\r\n", "!Content-Length"}},
		{"post small body",
			"POST " + fetchPrefix + "/p HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}",
			[]string{"Content-Length: 11\r\n", "\r\n\r\n{\"a\":\"b c\"}"}},
		{"post empty with content-length",
			"POST " + fetchPrefix + "/p HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			[]string{"Content-Length: 0\r\n"}},
		{"post empty without content-length",
			"POST " + fetchPrefix + "/p HTTP/1.1\r\n" + host + "\r\n",
			[]string{"Content-Length: 0\r\n"}},
		{"put empty",
			"PUT " + fetchPrefix + "/p HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			[]string{"Content-Length: 0\r\n"}},
		{"patch empty",
			"PATCH " + fetchPrefix + "/p HTTP/1.1\r\n" + host + "\r\n",
			[]string{"Content-Length: 0\r\n"}},
		{"delete empty",
			"DELETE " + fetchPrefix + "/d HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			[]string{"DELETE /d HTTP/1.1\r\n", "!Content-Length"}},
		{"delete with body",
			"DELETE " + fetchPrefix + "/d HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc",
			[]string{"Content-Length: 3\r\n"}},
		{"get with a body",
			"GET " + fetchPrefix + "/g HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc",
			[]string{"Content-Length: 3\r\n"}},
		{"get with content-length 0",
			"GET " + fetchPrefix + "/g HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			[]string{"!Content-Length"}},
		{"post of inlineMaxBody bytes",
			"POST " + fetchPrefix + "/p HTTP/1.1\r\n" + host + fmt.Sprintf("Content-Length: %d\r\n\r\n", inlineMaxBody) + patternBody(inlineMaxBody),
			[]string{fmt.Sprintf("Content-Length: %d\r\n", inlineMaxBody)}},
		{"post one byte over inlineMaxBody",
			"POST " + fetchPrefix + "/p HTTP/1.1\r\n" + host + fmt.Sprintf("Content-Length: %d\r\n\r\n", inlineMaxBody+1) + patternBody(inlineMaxBody+1),
			[]string{fmt.Sprintf("Content-Length: %d\r\n", inlineMaxBody+1)}},
		{"options",
			"OPTIONS " + fetchPrefix + "/o HTTP/1.1\r\n" + host + "\r\n",
			[]string{"OPTIONS /o HTTP/1.1\r\n"}},
		{"multi-valued headers",
			"GET " + fetchPrefix + "/m HTTP/1.1\r\n" + host + "Accept: a/b\r\nX-Multi: 1, 2\r\nCookie: a=1\r\nAccept: c/d\r\nCookie: b=2\r\nX-Multi: 3\r\nX-Empty:\r\nX-Padded:   v  \r\n\r\n",
			[]string{"Accept: a/b\r\nAccept: c/d\r\n", "Cookie: a=1\r\nCookie: b=2\r\n", "X-Multi: 1, 2\r\nX-Multi: 3\r\n", "X-Padded: v\r\n"}},
		{"connection-listed header dropped",
			"GET " + fetchPrefix + "/c HTTP/1.1\r\n" + host + "Connection: X-Foo, x-bar\r\nX-Foo: secret\r\nX-Bar: secret\r\nX-Baz: kept\r\n\r\n",
			[]string{"X-Baz: kept\r\n", "!X-Foo", "!X-Bar", "!Connection"}},
		{"connection lists user-agent",
			"GET " + fetchPrefix + "/c HTTP/1.1\r\n" + host + "Connection: User-Agent\r\nUser-Agent: ua/1\r\n\r\n",
			nil},
		{"connection lists a forwarding header",
			"GET " + fetchPrefix + "/c HTTP/1.1\r\n" + host + "Connection: X-Forwarded-For\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
			nil},
		{"hop-by-hop headers dropped",
			"GET " + fetchPrefix + "/h HTTP/1.1\r\n" + host + "Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nTe: gzip\r\nTrailer: X-T\r\nAccept: */*\r\n\r\n",
			[]string{"Accept: */*\r\n", "!Keep-Alive", "!Proxy-", "!Te:", "!Trailer"}},
		{"te trailers kept",
			"GET " + fetchPrefix + "/t HTTP/1.1\r\n" + host + "Te: trailers\r\nAccept: */*\r\n\r\n",
			[]string{"Te: trailers\r\n"}},
		{"te trailers among later headers",
			"GET " + fetchPrefix + "/t HTTP/1.1\r\n" + host + "Te: gzip, trailers\r\nAccept: */*\r\nX-After: 1\r\nZ-Last: 2\r\n\r\n",
			[]string{"Te: trailers\r\n", "X-After: 1\r\n"}},
		{"tuning headers stripped",
			"GET " + fetchPrefix + "/tun HTTP/1.1\r\n" + host + "Lunora-Attempts: 2\r\nLunora-Backoff-Ms: 10\r\nLunora-Max-Backoff-Ms: 20\r\nLunora-Pool-Size: 3\r\nCf-Container-Target-Port: 8080\r\nLunora-Other: kept\r\n\r\n",
			[]string{"Lunora-Other: kept\r\n", "!Lunora-Attempts", "!Backoff", "!Pool-Size", "!Cf-Container"}},
		{"no user agent",
			"GET " + fetchPrefix + "/ua HTTP/1.1\r\n" + host + "\r\n",
			[]string{"!User-Agent", "!Go-http-client"}},
		{"user agent",
			"GET " + fetchPrefix + "/ua HTTP/1.1\r\n" + host + "User-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
			[]string{"Host: container\r\nUser-Agent: curl/8.0\r\n"}},
		{"forwarding headers passed through",
			"GET " + fetchPrefix + "/f HTTP/1.1\r\n" + host + "X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\nForwarded: for=1.2.3.4;proto=https\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Proto: https\r\n\r\n",
			[]string{"X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n", "Forwarded: for=1.2.3.4;proto=https\r\n", "!127.0.0.1"}},
		{"idempotency key",
			"POST " + fetchPrefix + "/i HTTP/1.1\r\n" + host + "Idempotency-Key: k-1\r\nContent-Length: 2\r\n\r\nhi",
			[]string{"Idempotency-Key: k-1\r\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var wires [len(forwardPaths)][]byte
			for i, e := range envs {
				res, body := rawRoundTrip(t, e, tc.request)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d %q", forwardPaths[i].name, res.StatusCode, body)
				}
				select {
				case wires[i] = <-got:
				case <-time.After(ioTimeout):
					t.Fatalf("%s: the backend got no request", forwardPaths[i].name)
				}
			}
			if !bytes.Equal(wires[0], wires[1]) {
				t.Errorf("the container received different bytes:\ninline:       %q\nreverseproxy: %q", wires[0], wires[1])
			}
			for _, m := range tc.must {
				if absent, ok := strings.CutPrefix(m, "!"); ok {
					if bytes.Contains(wires[0], []byte(absent)) {
						t.Errorf("inline request contains %q: %q", absent, wires[0])
					}
				} else if !bytes.Contains(wires[0], []byte(m)) {
					t.Errorf("inline request lacks %q: %q", m, wires[0])
				}
			}
		})
	}
}

// clientView is everything the client can observe of one response.
type clientView struct {
	Status           int
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Body             string
	Trailer          http.Header
	Informational    []string // "103 Link=[...]"
	Err              string
}

// observe sends req and records what the client sees.
func observe(e *env, req *http.Request) clientView {
	var v clientView
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		v.Informational = append(v.Informational, fmt.Sprintf("%d %v", code, h))
		return nil
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	res, err := e.client.Do(req)
	if err != nil {
		v.Err = "request: " + err.Error()
		return v
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		v.Err = "body: " + err.Error()
	}
	res.Header.Del("Date")
	v.Status, v.Header, v.ContentLength, v.TransferEncoding = res.StatusCode, res.Header, res.ContentLength, res.TransferEncoding
	v.Body, v.Trailer = string(body), res.Trailer
	return v
}

// patternBody is n deterministic bytes that a reordering or a lost chunk
// would change.
func patternBody(n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%08d,", i)
	}
	return b.String()[:n]
}

// TestInlineResponseMatchesReverseProxy compares what the client sees of
// each kind of response through both paths.
func TestInlineResponseMatchesReverseProxy(t *testing.T) {
	big32 := patternBody(40 << 10)
	big1M := patternBody(1 << 20)
	mux := http.NewServeMux()
	mux.HandleFunc("/cl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	})
	mux.HandleFunc("/empty-cl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first,")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "second")
	})
	mux.HandleFunc("/trailers-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum, X-Count")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "abc")
		w.Header().Set("X-Count", "1")
	})
	mux.HandleFunc("/trailers-undeclared", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	mux.HandleFunc("/trailers-mixed", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	mux.HandleFunc("/trailers-declared-unsent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Never")
		_, _ = io.WriteString(w, "body")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Kind", "no content")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/head", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		w.Header().Set("Content-Type", "application/octet-stream")
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close, X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
		_, _ = io.WriteString(w, "hop")
	})
	mux.HandleFunc("/hop-listed", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("X-Kept", "yes")
		_, _ = io.WriteString(w, "hop")
	})
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Link", "</app.js>; rel=preload; as=script")
		w.WriteHeader(http.StatusEarlyHints)
		// net/http keeps a 1xx's headers for the final response; the
		// container drops them so the test can tell where Link went.
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html></html>")
	})
	mux.HandleFunc("/status-418", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	})
	mux.HandleFunc("/big-40k", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big32)))
		_, _ = io.WriteString(w, big32)
	})
	mux.HandleFunc("/big-1m", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big1M)))
		_, _ = io.WriteString(w, big1M)
	})
	mux.HandleFunc("/big-1m-chunked", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, big1M)
	})
	envs := newPathEnvs(t, startBackend(t, mux))

	cases := []struct {
		method, path string
		wantBody     string // checked on the inline path; "" skips
	}{
		{http.MethodGet, "/cl", "hello"},
		{http.MethodGet, "/empty-cl", ""},
		{http.MethodGet, "/chunked", "first,second"},
		{http.MethodGet, "/trailers-declared", "body"},
		{http.MethodGet, "/trailers-undeclared", "body"},
		{http.MethodGet, "/trailers-mixed", "body"},
		{http.MethodGet, "/trailers-declared-unsent", "body"},
		{http.MethodGet, "/204", ""},
		{http.MethodGet, "/304", ""},
		{http.MethodHead, "/head", ""},
		{http.MethodGet, "/hop", "hop"},
		{http.MethodGet, "/hop-listed", "hop"},
		{http.MethodGet, "/early-hints", "<html></html>"},
		{http.MethodGet, "/status-418", "short and stout"},
		{http.MethodGet, "/big-40k", big32},
		{http.MethodGet, "/big-1m", big1M},
		{http.MethodGet, "/big-1m-chunked", big1M},
	}
	for _, tc := range cases {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			var views [len(forwardPaths)]clientView
			for i, e := range envs {
				views[i] = observe(e, e.request(tc.method, fetchPrefix+tc.path, nil))
				if views[i].Err != "" {
					t.Errorf("%s: %s", forwardPaths[i].name, views[i].Err)
				}
			}
			if !reflect.DeepEqual(views[0], views[1]) {
				t.Errorf("the client saw different responses:\ninline:       %s\nreverseproxy: %s", viewString(views[0]), viewString(views[1]))
			}
			if tc.wantBody != "" && views[0].Body != tc.wantBody {
				t.Errorf("inline body: %d bytes, want %d (equal prefix %d bytes)", len(views[0].Body), len(tc.wantBody), commonPrefix(views[0].Body, tc.wantBody))
			}
		})
	}

	// The cases above would pass if neither path forwarded these; pin them.
	t.Run("inline specifics", func(t *testing.T) {
		e := envs[0]
		v := observe(e, e.request(http.MethodGet, fetchPrefix+"/trailers-mixed", nil))
		if v.Trailer.Get("X-Sum") != "abc" || v.Trailer.Get("X-Late") != "late" {
			t.Errorf("trailers %v, want X-Sum and X-Late", v.Trailer)
		}
		v = observe(e, e.request(http.MethodGet, fetchPrefix+"/early-hints", nil))
		if len(v.Informational) != 2 || !strings.HasPrefix(v.Informational[0], "103 ") || !strings.Contains(v.Informational[0], "style.css") ||
			!strings.Contains(v.Informational[1], "app.js") || strings.Contains(v.Informational[1], "style.css") {
			t.Errorf("1xx seen by the client: %q, want two 103s, each with its own Link", v.Informational)
		}
		if v.Header.Get("Link") != "" {
			t.Errorf("the 103's Link leaked into the final response: %v", v.Header)
		}
		v = observe(e, e.request(http.MethodGet, fetchPrefix+"/hop-listed", nil))
		if v.Header.Get("X-Hop") != "" || v.Header.Get("X-Kept") != "yes" {
			t.Errorf("a header the Connection header lists was forwarded (or X-Kept lost): %v", v.Header)
		}
		// With "Connection: close, X-Hop", http.ReadResponse deletes the
		// Connection header before either path sees it, so X-Hop is
		// forwarded by both: net/http's behaviour, kept for equivalence.
		v = observe(e, e.request(http.MethodGet, fetchPrefix+"/hop", nil))
		if v.Header.Get("Keep-Alive") != "" || v.Header.Get("X-Kept") != "yes" {
			t.Errorf("Keep-Alive forwarded (or X-Kept lost): %v", v.Header)
		}
		v = observe(e, e.request(http.MethodHead, fetchPrefix+"/head", nil))
		if v.ContentLength != 1234 {
			t.Errorf("HEAD Content-Length %d, want 1234", v.ContentLength)
		}
	})
}

// Responses net/http's server would not write: framed by the connection's
// close, or HTTP/1.0.
func TestInlineRawResponsesMatchReverseProxy(t *testing.T) {
	// Streamed bodies carry a Content-Type: without one, whether the
	// front server sniffs one for the client depends, on ReverseProxy's
	// side, on timing (inline never sniffs: it flushes the headers first).
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nuntil the close",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno framing at all",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nshort",
		"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Encoding: gzip\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\nabc",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
		"HTTP/1.1 200 OK\r\nContent-Type: application/x-custom\r\nContent-Length: 40000\r\n\r\n" + patternBody(40000),
		"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\nX-U: w\r\n\r\n",
	} {
		name, _, _ := strings.Cut(answer, "\r\n\r\n")
		t.Run(name, func(t *testing.T) {
			b := startRawBackend(t, func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					_ = c.write(answer)
				}
			})
			var views [len(forwardPaths)]clientView
			for i, e := range newPathEnvs(t, b.addr()) {
				req := e.request(http.MethodGet, fetchPrefix+"/r", nil)
				req.Header.Set(headerAttempts, "1")
				views[i] = observe(e, req)
			}
			if !reflect.DeepEqual(views[0], views[1]) {
				t.Errorf("the client saw different responses:\ninline:       %s\nreverseproxy: %s", viewString(views[0]), viewString(views[1]))
			}
			if views[0].Err != "" || views[0].Status == 0 {
				t.Errorf("inline: %s", viewString(views[0]))
			}
		})
	}
}

func viewString(v clientView) string {
	if len(v.Body) > 64 {
		v.Body = fmt.Sprintf("%.64s... (%d bytes)", v.Body, len(v.Body))
	}
	return fmt.Sprintf("%+v", v)
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// An event stream's first event reaches the client while the container is
// still writing: the inline path flushes as ReverseProxy does.
func TestInlineEventStreamFlushesEachEvent(t *testing.T) {
	next := make(chan struct{})
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	for i, e := range newPathEnvs(t, backend) {
		t.Run(forwardPaths[i].name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res, err := e.client.Do(e.request(http.MethodGet, fetchPrefix+"/events", nil).WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			first := make(chan string, 1)
			go func() {
				line, _ := br.ReadString('\n')
				first <- line
			}()
			select {
			case line := <-first:
				if line != "data: one\n" {
					t.Fatalf("first line %q", line)
				}
			case <-time.After(ioTimeout):
				cancel() // ends the reader
				t.Fatal("the first event did not arrive while the stream was open")
			}
			next <- struct{}{}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "\ndata: two\n\n" {
				t.Fatalf("rest %q, %v", rest, err)
			}
		})
	}
}

// failureView is what a client sees of a failed proxied request.
type failureView struct {
	Status   int
	Body     string
	ErrKind  string // "", "request" or "body"
	Attempts int    // backoff waits + 1
}

func driveFailure(e *env, req *http.Request) failureView {
	r, waits := e.drive(req)
	v := failureView{Status: r.status, Body: r.body, Attempts: len(waits) + 1}
	switch {
	case r.err != nil && r.status == 0:
		v.ErrKind = "request"
	case r.err != nil:
		v.ErrKind = "body"
	}
	return v
}

// TestInlineFailuresClassifyLikeReverseProxy breaks the container in ways
// that must read the same to the client through both paths.
func TestInlineFailuresClassifyLikeReverseProxy(t *testing.T) {
	cases := []struct {
		name   string
		serve  func(*rawConn)         // nil: nothing listens
		method string                 // GET when empty
		body   string                 // request body
		check  func(failureView) bool // what the inline path must show
		want   string
	}{
		{
			name: "reset after reading the request",
			serve: func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					c.reset()
				}
			},
			check: func(v failureView) bool {
				return v.Status == http.StatusInternalServerError && v.Body == bodyDisconnected && v.Attempts == defaultAttempts
			},
			want: "500 disconnect body after every attempt",
		},
		{
			name:   "reset after reading a POST",
			method: http.MethodPost, body: "payload",
			serve: func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					c.reset()
				}
			},
			check: func(v failureView) bool {
				return v.Status == http.StatusInternalServerError && v.Body == bodyDisconnected
			},
			want: "500 disconnect body",
		},
		{
			name: "close before any response byte",
			serve: func(c *rawConn) {
				_, _, _ = c.readRequest()
			},
			check: func(v failureView) bool {
				return v.Status == http.StatusInternalServerError && v.Body == bodyDisconnected
			},
			want: "500 disconnect body",
		},
		{
			name: "close after half a Content-Length body",
			serve: func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					_ = c.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
				}
			},
			check: func(v failureView) bool { return v.ErrKind != "" && v.Attempts == 1 },
			want:  "a client error, no retry",
		},
		{
			name: "close mid chunked body",
			serve: func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					_ = c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				}
			},
			check: func(v failureView) bool { return v.Status == http.StatusOK && v.ErrKind == "body" && v.Attempts == 1 },
			want:  "200 then a body error, no retry",
		},
		{
			name: "malformed response",
			serve: func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					_ = c.write("NOT HTTP\r\n\r\n")
				}
			},
			check: func(v failureView) bool {
				return v.Status == http.StatusInternalServerError && strings.HasPrefix(v.Body, prefixProxyError)
			},
			want: "500 proxy error body",
		},
		{
			name: "101 to a request that did not ask to upgrade",
			serve: func(c *rawConn) {
				if _, _, err := c.readRequest(); err == nil {
					_ = c.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n")
					_, _, _ = c.readRequest() // until the router closes the connection
				}
			},
			check: func(v failureView) bool {
				return v.Status == http.StatusInternalServerError && strings.HasPrefix(v.Body, prefixProxyError)
			},
			want: "500 proxy error body",
		},
		{
			name: "nothing listening",
			check: func(v failureView) bool {
				return v.Status == http.StatusInternalServerError && strings.HasPrefix(v.Body, prefixProxyError) &&
					strings.Contains(v.Body, "connection refused") && v.Attempts == defaultAttempts
			},
			want: "500 dial error body after every attempt",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var addr string
			if tc.serve != nil {
				addr = startRawBackend(t, tc.serve).addr()
			} else {
				addr = closedAddr(t)
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var views [len(forwardPaths)]failureView
			for i, e := range newPathEnvs(t, addr) {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				views[i] = driveFailure(e, e.request(method, fetchPrefix+"/x", body))
			}
			if views[0] != views[1] {
				t.Errorf("the client saw different failures:\ninline:       %+v\nreverseproxy: %+v", views[0], views[1])
			}
			if !tc.check(views[0]) {
				t.Errorf("inline: %+v, want %s", views[0], tc.want)
			}
		})
	}
}

func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                true,
		"Text/Event-Stream; charset=utf-8": true,
		" text/event-stream":               true,
		"text/plain":                       false,
		"application/json":                 false,
		"":                                 false,
		"text/event-streams":               false,
	} {
		if got := isEventStream(ct); got != want {
			t.Errorf("isEventStream(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestInlineResponseReachesClientBeforeRelease: once the whole body of a
// response with a Content-Length is copied, the client has it, without
// waiting for the attempt's bookkeeping (here, a Release held back).
func TestInlineResponseReachesClientBeforeRelease(t *testing.T) {
	for _, typed := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-type=%v", typed), func(t *testing.T) {
			backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if typed {
					w.Header().Set("Content-Type", "text/plain")
				}
				w.Header().Set("Content-Length", "5")
				_, _ = io.WriteString(w, "hello")
			}))
			e := newPathEnv(t, backend, false)
			gate := make(chan struct{})
			e.instances.beforeRelease = func() { <-gate }
			got := make(chan result, 1)
			go func() { got <- e.get(fetchPrefix + "/x") }()
			select {
			case r := <-got:
				close(gate)
				if r.err != nil || r.status != http.StatusOK || r.body != "hello" {
					t.Fatalf("got %d %q, %v", r.status, r.body, r.err)
				}
				if want := map[bool]string{true: "text/plain", false: "text/plain; charset=utf-8"}[typed]; r.header.Get("Content-Type") != want {
					t.Fatalf("Content-Type %q, want %q", r.header.Get("Content-Type"), want)
				}
			case <-time.After(ioTimeout):
				close(gate)
				t.Fatal("the response did not reach the client while the lease was still held")
			}
		})
	}
}
