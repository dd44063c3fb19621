package httpfront_test

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// equivalenceHandlers is one handler per path; both servers run the same set.
func equivalenceHandlers() map[string]http.HandlerFunc {
	write := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, s) }
	}
	flusher := func(w http.ResponseWriter) http.Flusher { return w.(http.Flusher) }
	return map[string]http.HandlerFunc{
		"/small":     write("hello"),
		"/big":       write(strings.Repeat("a", 3000)),
		"/exact2048": write(strings.Repeat("b", 2048)),
		"/exact2049": write(strings.Repeat("c", 2049)),
		"/big-bytes": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("a", 3000)))
		},
		"/exact2049-bytes": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("c", 2049)))
		},
		"/101-no-hijack": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusSwitchingProtocols)
			_, _ = io.WriteString(w, "x")
		},
		"/1xx-after-body": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "x")
			w.WriteHeader(http.StatusEarlyHints)
		},
		"/huge-header": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Huge", strings.Repeat("v", 10<<10))
			_, _ = io.WriteString(w, "x")
		},
		"/cl-spaces": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", " 1 ")
			_, _ = io.WriteString(w, "x")
		},
		"/cl-zero": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "0")
		},
		"/conn-Close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "Close")
			_, _ = io.WriteString(w, "x")
		},
		"/conn-keepalive": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "keep-alive")
			_, _ = io.WriteString(w, "x")
		},
		"/304-bare": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) },
		"/trailer-head": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-T")
			w.Header().Set("X-T", "v")
		},
		"/split2048": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("d", 1000))
			_, _ = io.WriteString(w, strings.Repeat("e", 1048))
		},
		"/split2049": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("f", 2000))
			_, _ = io.WriteString(w, strings.Repeat("g", 49))
		},
		"/readfrom": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(w, io.LimitReader(strings.NewReader(strings.Repeat("x", 5000)), 5000))
		},
		"/readfrom-small": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(w, io.LimitReader(strings.NewReader("<html>short"), 100))
		},
		"/readfrom-cl": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000")
			_, _ = io.Copy(w, io.LimitReader(strings.NewReader(strings.Repeat("y", 5000)), 5000))
		},
		"/readfrom-after-write": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "head:")
			_, _ = io.Copy(w, io.LimitReader(strings.NewReader(strings.Repeat("z", 5000)), 5000))
		},
		"/cl": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		},
		"/cl-big": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3000")
			_, _ = io.WriteString(w, strings.Repeat("h", 3000))
		},
		"/cl-short": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "hello")
		},
		"/cl-long": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			_, _ = io.WriteString(w, "hello")
		},
		"/cl-nil": func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Length"] = nil // net/http: suppresses the computed length
			_, _ = io.WriteString(w, "hello")
		},
		"/bad-cl": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "abc")
			_, _ = io.WriteString(w, "hello")
		},
		"/sniff-html": write("<html><body>hi</body></html>"),
		"/sniff-json": write(`{"a":1}`),
		"/sniff-bin": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte{0, 1, 2, 3, 0xff, 0xfe})
		},
		"/type-nil": func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil // net/http: no sniffing, no header
			_, _ = io.WriteString(w, "<html>")
		},
		"/ce-no-type": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write([]byte{0x1f, 0x8b, 8, 0})
		},
		"/date-nil": func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil // net/http's documented way to suppress Date
			_, _ = io.WriteString(w, "x")
		},
		"/date-set": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
			_, _ = io.WriteString(w, "x")
		},
		"/204": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusNoContent)
			_, _ = io.WriteString(w, "hello")
		},
		"/304": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "10")
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
			_, _ = io.WriteString(w, "x")
		},
		"/103": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Link", "</app.js>; rel=preload; as=script")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "done")
		},
		"/flush-first": func(w http.ResponseWriter, r *http.Request) {
			flusher(w).Flush()
			_, _ = io.WriteString(w, "hello")
		},
		"/flush-mid": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "a")
			flusher(w).Flush()
			_, _ = io.WriteString(w, "b")
		},
		"/flush-cl": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			flusher(w).Flush()
			_, _ = io.WriteString(w, "ab")
		},
		"/controller-flush": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "a")
			if err := http.NewResponseController(w).Flush(); err != nil {
				panic(err)
			}
			_, _ = io.WriteString(w, "b")
		},
		"/trailer-declared": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-T, X-Other")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-T", "v")
		},
		"/trailer-prefix": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "body")
			w.Header().Set(http.TrailerPrefix+"X-U", "u")
		},
		"/trailer-prefix-before": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(http.TrailerPrefix+"X-U", "early")
			_, _ = io.WriteString(w, "body")
		},
		"/trailer-with-cl": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-T")
			w.Header().Set("Content-Length", "4")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-T", "v")
		},
		"/conn-close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		},
		"/conn-keepalive-close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "keep-alive, close")
			_, _ = io.WriteString(w, "bye")
		},
		"/599": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(599)
			_, _ = io.WriteString(w, "x")
		},
		"/299": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(299)
		},
		"/404": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) },
		"/error": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusBadGateway)
		},
		"/multi": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("X-M", "1")
			w.Header().Add("X-M", "2")
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.Header()["lower-case"] = []string{"kept as is"}
			w.Header().Set("X-Newline", "a\r\nb")
			w.Header().Set("Zz", "last")
			w.Header().Set("Aa", "first")
			w.Header()["Bad Key"] = []string{"dropped"}
			w.Header()["X-No-Values"] = []string{}
			w.Header().Set("X-Pad", " \t padded \t ")
			_, _ = io.WriteString(w, "m")
		},
		"/many": func(w http.ResponseWriter, r *http.Request) {
			for i := range 40 {
				w.Header().Set(fmt.Sprintf("X-H%02d", 39-i), fmt.Sprint(i))
			}
			_, _ = io.WriteString(w, "many")
		},
		"/nowrite": func(w http.ResponseWriter, r *http.Request) {},
		"/header-only": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-A", "1")
		},
		"/write-empty": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(nil) },
		"/late-header": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Early", "1")
			w.WriteHeader(http.StatusCreated)
			w.Header().Set("X-Late", "1")
			_, _ = io.WriteString(w, "x")
		},
		"/late-header-implicit": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "x")
			w.Header().Set("X-Late", "1")
		},
		"/late-header-no-header-call": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			w.Header().Set("X-Late", "1")
		},
		"/writeheader-twice": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "x")
		},
		"/te-chunked": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "chunked")
			_, _ = io.WriteString(w, "hi")
		},
		"/te-identity": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "identity")
			_, _ = io.WriteString(w, "hi")
		},
		"/te-and-cl": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "gzip")
			w.Header().Set("Content-Length", "2")
			_, _ = io.WriteString(w, "hi")
		},
		"/invalid-code": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(1000) },
		"/abort-after-flush": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "partial")
			flusher(w).Flush()
			panic(http.ErrAbortHandler)
		},
		"/abort-buffered": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		},
		"/panic": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "x")
			panic("boom")
		},
		"/read-body": func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d %q %v", len(b), b, err)
		},
		"/ignore-body": write("ignored"),
		"/echo":        echoRequest,
	}
}

// echoRequest writes what the handler sees of the request, so request
// parsing differences show as body differences.
func echoRequest(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "method=%q uri=%q url=%q host=%q proto=%q close=%v cl=%d te=%q\n",
		r.Method, r.RequestURI, r.URL.String(), r.Host, r.Proto, r.Close, r.ContentLength, r.TransferEncoding)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, r.Header[k])
	}
	body, err := io.ReadAll(r.Body)
	fmt.Fprintf(&b, "body=%q err=%v nobody=%v trailer=%v\n", body, err, r.Body == http.NoBody, r.Trailer)
	fmt.Fprintf(&b, "remote-set=%v\n", r.RemoteAddr != "")
	_, _ = io.WriteString(w, b.String())
}

func req(method, path string, headers ...string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: example.test\r\n" + strings.Join(headers, "") + "\r\n"
}

func TestEquivalence(t *testing.T) {
	table := equivalenceHandlers()
	plain := startPlain(t, routes(nil, table))
	rec := &recorder{}
	front := startFront(t, routes(rec, table), nil)

	type tc struct {
		name  string
		steps []step
		// handedOff: the request is not plain, so httpfront must not serve
		// it itself (checked through the recorder).
		handedOff bool
	}
	var cases []tc
	for _, path := range sortedKeys(table) {
		cases = append(cases, tc{name: "GET " + path, steps: []step{get(req("GET", path))}})
	}
	for _, path := range []string{"/small", "/big", "/cl", "/cl-short", "/nowrite", "/trailer-declared", "/204", "/flush-first", "/te-identity", "/readfrom", "/readfrom-cl", "/exact2049"} {
		cases = append(cases, tc{name: "HEAD " + path, steps: []step{{raw: req("HEAD", path), methods: []string{"HEAD"}}}})
	}
	for _, path := range []string{"/small", "/big", "/nowrite", "/cl-short", "/flush-mid", "/trailer-prefix"} {
		cases = append(cases, tc{name: "client close " + path, steps: []step{get(req("GET", path, "Connection: close\r\n"))}})
	}
	post := func(path, body string, extra ...string) string {
		return req("POST", path, append([]string{"Content-Length: " + strconv.Itoa(len(body)) + "\r\n"}, extra...)...) + body
	}
	cases = append(cases,
		tc{name: "client Close capitalised", steps: []step{get(req("GET", "/small", "Connection: Close\r\n"))}},
		tc{name: "client keep-alive, close", steps: []step{get(req("GET", "/small", "Connection: keep-alive, close\r\n"))}},
		tc{name: "POST read body", steps: []step{get(post("/read-body", "hello"))}},
		tc{name: "POST unread body", steps: []step{get(post("/ignore-body", "hello"))}},
		tc{name: "POST 60KiB unread body", steps: []step{get(post("/ignore-body", strings.Repeat("z", 60<<10)))}},
		tc{name: "POST 60KiB read body", steps: []step{get(post("/echo", strings.Repeat("z", 60<<10)))}},
		tc{name: "client close, handler keep-alive", steps: []step{get(req("GET", "/conn-keepalive", "Connection: close\r\n"))}},
		tc{name: "client close, unread body", steps: []step{get(post("/ignore-body", "hello", "Connection: close\r\n"))}},
		tc{name: "HEAD trailer only", steps: []step{{raw: req("HEAD", "/trailer-head"), methods: []string{"HEAD"}}}},
		tc{name: "POST 64KiB exactly", steps: []step{get(post("/read-body", strings.Repeat("q", 64<<10)))}},
		tc{name: "GET with body", steps: []step{get(post("/echo", "abc")), get(req("GET", "/small"))}},
		tc{name: "two sequential", steps: []step{get(req("GET", "/small")), get(req("GET", "/big"))}},
		tc{name: "three sequential", steps: []step{get(req("GET", "/small")), get(req("GET", "/trailer-declared")), get(req("GET", "/cl"))}},
		tc{name: "two pipelined", steps: []step{{raw: req("GET", "/small") + req("GET", "/big"), methods: []string{"GET", "GET"}}}},
		tc{name: "three pipelined with bodies", steps: []step{{
			raw:     post("/read-body", "one") + req("HEAD", "/big") + post("/ignore-body", "three"),
			methods: []string{"POST", "HEAD", "POST"},
		}}},
		tc{name: "pipelined after close", steps: []step{{raw: req("GET", "/conn-close") + req("GET", "/small"), methods: []string{"GET", "GET"}}}},
		tc{name: "pipelined after short body", steps: []step{{raw: req("GET", "/cl-short") + req("GET", "/small"), methods: []string{"GET", "GET"}}}},
		tc{name: "query and escapes", steps: []step{get(req("GET", "/echo?a=1&b=%20x&c=%zz"))}},
		tc{name: "repeated headers", steps: []step{get(req("GET", "/echo", "X-A: 1\r\nx-a: 2\r\nX-B:   spaced   \r\nCookie: a=1\r\nCookie: b=2\r\n"))}},
		tc{name: "host with port", steps: []step{get("GET /echo HTTP/1.1\r\nHost: Example.TEST:8080\r\n\r\n")}},
		tc{name: "empty host", steps: []step{get("GET /echo HTTP/1.1\r\nHost:\r\n\r\n")}},
		tc{name: "ipv6 host", steps: []step{get("GET /echo HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")}},
		tc{name: "lowercase method", steps: []step{get("get /echo HTTP/1.1\r\nHost: x\r\n\r\n")}},
		tc{name: "unicode header value", steps: []step{get(req("GET", "/echo", "X-U: h\u00e9llo\r\n"))}},
		tc{name: "content-length zero on GET", steps: []step{get(req("GET", "/echo", "Content-Length: 0\r\n"))}},
		tc{name: "same content-length twice", steps: []step{get(req("POST", "/echo", "Content-Length: 2\r\nContent-Length: 2\r\n") + "ab")}},
		tc{name: "content-length leading zeros", steps: []step{get(req("POST", "/echo", "Content-Length: 002\r\n") + "ab")}},
		// Requests net/http rejects (or treats specially): httpfront must
		// give the same answer, normally by handing off.
		tc{name: "invalid host", steps: []step{get("GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n")}},
		tc{name: "invalid host chars", steps: []step{get("GET /echo HTTP/1.1\r\nHost: a/b\r\n\r\n")}},
		tc{name: "control byte in header value", steps: []step{get(req("GET", "/echo", "X-A: a\x01b\r\n"))}},
		tc{name: "space before colon", steps: []step{get(req("GET", "/echo", "X-A : 1\r\n"))}},
		tc{name: "conflicting content-length", steps: []step{get(req("POST", "/echo", "Content-Length: 2\r\nContent-Length: 3\r\n") + "abc")}},
		tc{name: "content-length list", steps: []step{get(req("POST", "/echo", "Content-Length: 2, 2\r\n") + "ab")}},
		tc{name: "content-length plus", steps: []step{get(req("POST", "/echo", "Content-Length: +2\r\n") + "ab")}},
		tc{name: "OPTIONS *", steps: []step{get("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")}},
		tc{name: "absolute-form", steps: []step{get("GET http://other.test/echo?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")}},
		tc{name: "fragment", steps: []step{get("GET /echo#frag HTTP/1.1\r\nHost: x\r\n\r\n")}},
		tc{name: "leading CRLF", steps: []step{get("\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")}},
		tc{name: "bare LF", steps: []step{get("GET /echo HTTP/1.1\nHost: x\n\n")}, handedOff: true},
		tc{name: "obs-fold", steps: []step{get(req("GET", "/echo", "X-A: a\r\n b\r\n"))}, handedOff: true},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.list())
			compareServers(t, plain, front.addr, c.steps...)
			if c.handedOff {
				for _, s := range rec.list()[before:] {
					if strings.HasSuffix(s, " lean") {
						t.Errorf("served by httpfront, want the fallback: %v", rec.list()[before:])
					}
				}
			}
		})
	}
}

func sortedKeys(m map[string]http.HandlerFunc) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestRequestContextValues: net/http puts the local address and the server
// in every request's context; handlers (and libraries) read them.
func TestRequestContextValues(t *testing.T) {
	type seen struct {
		local  string
		server bool
	}
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(interface{ String() string }); ok {
			s.local = a.String()
		}
		_, s.server = r.Context().Value(http.ServerContextKey).(*http.Server)
		got <- s
	})
	rec := &recorder{}
	front := startFront(t, routes(rec, map[string]http.HandlerFunc{"/ctx": h}), nil)
	_ = transcript(t, front.addr, get(req("GET", "/ctx")))
	s := <-got
	if s.local != front.addr {
		t.Errorf("LocalAddrContextKey = %q, want %q (as net/http sets it)", s.local, front.addr)
	}
	if !s.server {
		t.Errorf("ServerContextKey holds no *http.Server (net/http sets it; Fallback would do)")
	}
	if l := rec.list(); len(l) != 1 || l[0] != "/ctx lean" {
		t.Errorf("served = %v, want [/ctx lean]", l)
	}
}
