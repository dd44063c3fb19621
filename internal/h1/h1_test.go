package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

const (
	goClientHead     = "GET /v1/containers/hello/instances/a/fetch/greet HTTP/1.1\r\nHost: 127.0.0.1:8790\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
	goServerResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Sat, 28 Nov 2026 16:00:00 GMT\r\nContent-Length: 12\r\n\r\nhello, you!\n"
)

// commonRequests are heads real clients send; all must be accepted.
var commonRequests = map[string]string{
	"go client":           goClientHead,
	"router to container": "GET /greet HTTP/1.1\r\nHost: container\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
	"router post":         "POST /items?x=1 HTTP/1.1\r\nHost: container\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 5\r\nAccept-Encoding: gzip\r\nContent-Type: text/plain\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
	"curl":                "GET /greet?name=moon HTTP/1.1\r\nHost: localhost:8790\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
	"curl post":           "POST /v1/items HTTP/1.1\r\nHost: localhost:8790\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n",
	"curl empty post":     "POST /v1/items HTTP/1.1\r\nHost: localhost:8790\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n",
	"curl head":           "HEAD / HTTP/1.1\r\nHost: localhost:8790\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
	"browser": "GET /app/index.html?lang=en&v=3 HTTP/1.1\r\nHost: localhost:8790\r\nConnection: keep-alive\r\n" +
		"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\nsec-ch-ua-mobile: ?0\r\n" +
		"sec-ch-ua-platform: \"Linux\"\r\nUpgrade-Insecure-Requests: 1\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n" +
		"Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\nSec-Fetch-Dest: document\r\n" +
		"Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9,de;q=0.8\r\n" +
		"Cookie: session=abc123; theme=dark; _ga=GA1.1.123456789.1700000000\r\n" +
		"If-None-Match: W/\"5e-abc\"\r\n\r\n",
	"firefox": "GET /favicon.ico HTTP/1.1\r\nHost: localhost:8790\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n" +
		"Accept: image/avif,image/webp,*/*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Connection: keep-alive\r\nReferer: http://localhost:8790/\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n",
	"node fetch": "GET /greet HTTP/1.1\r\nhost: 127.0.0.1:8790\r\nconnection: keep-alive\r\naccept: */*\r\naccept-language: *\r\n" +
		"sec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\n\r\n",
	"node fetch post": "POST /api/echo HTTP/1.1\r\nhost: 127.0.0.1:8790\r\nconnection: keep-alive\r\ncontent-type: application/json\r\n" +
		"accept: */*\r\naccept-language: *\r\nsec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\ncontent-length: 17\r\n\r\n",
	"connection close":          "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"pragma alone":              "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"empty query":               "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
	"escaped query":             "GET /search?q=hello%20world&x=%7C|^ HTTP/1.1\r\nHost: a\r\n\r\n",
	"odd path":                  "GET //a//b/;c=d/e+f~g/@h:i$&, HTTP/1.1\r\nHost: a\r\n\r\n",
	"tabs and empty value":      "GET / HTTP/1.1\r\nHost:\ta \t\r\nX-Empty:\r\nX-Blank:  \t \r\n\r\n",
	"repeated header":           "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-A: 3\r\n\r\n",
	"no host":                   "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
	"no headers":                "GET / HTTP/1.1\r\n\r\n",
	"delete":                    "DELETE /items/7 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	"content-length spaces":     "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length:   42  \r\n\r\n",
	"content-length leading 0s": "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
}

// outOfSubset are valid requests that must be declined.
var outOfSubset = map[string]string{
	"http/1.0":            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"http/2 preface":      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"absolute-form":       "GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"asterisk":            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"connect authority":   "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"connect path":        "CONNECT /rpc HTTP/1.1\r\nHost: a\r\n\r\n",
	"folded line":         "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
	"bare lf":             "GET / HTTP/1.1\nHost: a\n\n",
	"bare lf in head":     "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
	"bare cr in value":    "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
	"percent in path":     "GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n",
	"pipe in path":        "GET /a|b HTTP/1.1\r\nHost: a\r\n\r\n",
	"fragment":            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
	"utf-8 path":          "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
	"obs-text value":      "GET / HTTP/1.1\r\nHost: a\r\nX: \xc3\xa9\r\n\r\n",
	"chunked":             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	"two content-lengths": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"space before colon":  "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"lowercase method":    "get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"two spaces":          "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"bytes after head":    "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	"incomplete":          "GET / HTTP/1.1\r\nHost: a\r\n",
}

// invalidRequests are refused by net/http; declining is the only answer.
var invalidRequests = []string{
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"GET / HTTP/1.1\r\n: a\r\n\r\n",
	"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	"GET / HTTP/1.1\r\nX(: a\r\n\r\n",
	"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
	"GET /a\x7f HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1 \r\n\r\n",
	"G(T / HTTP/1.1\r\n\r\n",
}

const (
	goHead      = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	nodeHeaders = "Date: Sat, 28 Nov 2026 16:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
)

// commonResponses are heads Go and Node servers send; all must be accepted
// (for the request method given before the first space, "-" for none).
var commonResponses = map[string]string{
	"go 200":      "GET " + goServerResponse,
	"go 404":      "GET HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Sat, 28 Nov 2026 16:00:00 GMT\r\nContent-Length: 19\r\n\r\n404 page not found\n",
	"go 204":      "DELETE HTTP/1.1 204 No Content\r\nDate: Sat, 28 Nov 2026 16:00:00 GMT\r\n\r\n",
	"go 304":      "GET HTTP/1.1 304 Not Modified\r\nEtag: \"abc\"\r\nDate: Sat, 28 Nov 2026 16:00:00 GMT\r\n\r\n",
	"go 100":      "POST HTTP/1.1 100 Continue\r\n\r\n",
	"go 103":      "GET HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"go head":     "HEAD HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 1234\r\n\r\n",
	"head no len": "HEAD HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
	"go empty":    "POST " + goHead,
	"no request":  "- " + goServerResponse,
	"go close":    "GET HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	"go redirect": "GET HTTP/1.1 302 Found\r\nContent-Type: text/html; charset=utf-8\r\nLocation: /login\r\nDate: Sat, 28 Nov 2026 16:00:00 GMT\r\nContent-Length: 29\r\n\r\n<a href=\"/login\">Found</a>.\n\n",
	"node json":   "GET HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n" + nodeHeaders + "\r\n{\"hello\":\"world\"}",
	"node express": "GET HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\n" +
		"ETag: W/\"5-ZXhwcmVzcw\"\r\nSet-Cookie: a=1; Path=/; HttpOnly\r\nSet-Cookie: b=2; Path=/\r\n" + nodeHeaders + "\r\nhello",
	"node 204":          "OPTIONS HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n" + nodeHeaders + "\r\n",
	"lowercase names":   "GET HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nabc",
	"missing reason":    "GET HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"empty reason":      "GET HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
	"pragma":            "GET HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"pragma with cache": "GET HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: max-age=5\r\nContent-Length: 0\r\n\r\n",
	"204 with length":   "GET HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
}

var outOfSubsetResponses = map[string]string{
	"chunked":          "GET HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"close-delimited":  "GET HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
	"http/1.0":         "GET HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	"cut in status":    "GET HTTP/1.1 20",
	"cut in header":    "GET HTTP/1.1 200 OK\r\nContent-Len",
	"cut before blank": "GET HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
	"folded":           "GET HTTP/1.1 200 OK\r\nX-A: 1\r\n\t2\r\nContent-Length: 0\r\n\r\n",
	"bare lf":          "GET HTTP/1.1 200 OK\nContent-Length: 0\n\n\r\n\r\n",
	"two lengths":      "GET HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"status 600":       "GET HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
	"two spaces":       "GET HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
	"utf-8 reason":     "GET HTTP/1.1 200 \xc3\xa9\r\nContent-Length: 0\r\n\r\n",
}

// splitResponse splits a commonResponses entry into its request and buffer.
func splitResponse(entry string) (*http.Request, []byte) {
	method, buf, _ := strings.Cut(entry, " ")
	if method == "-" {
		return nil, []byte(buf)
	}
	return &http.Request{Method: method}, []byte(buf)
}

func stdReadRequest(head []byte) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
}

// stdReadResponse also returns how many bytes of buf net/http consumed.
func stdReadResponse(buf []byte, req *http.Request) (*http.Response, int, error) {
	src := bytes.NewReader(buf)
	br := bufio.NewReader(src)
	res, err := http.ReadResponse(br, req)
	return res, len(buf) - src.Len() - br.Buffered(), err
}

// checkRequest fails t when ParseRequest accepts head with a result other
// than net/http's, and reports whether it accepted.
func checkRequest(t *testing.T, head []byte) bool {
	t.Helper()
	got, ok := ParseRequest(head)
	if !ok {
		if got != nil {
			t.Fatalf("declined %q with a request", head)
		}
		return false
	}
	want, err := stdReadRequest(head)
	if err != nil {
		t.Fatalf("accepted %q, which net/http refuses: %v", head, err)
	}
	if (got.Body == http.NoBody) != (want.Body == http.NoBody) || got.Body != nil && got.Body != http.NoBody {
		t.Fatalf("%q: Body %#v, net/http's %#v", head, got.Body, want.Body)
	}
	got.Body, want.Body = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got  %#v\n      %#v\n want %#v\n      %#v", head, got, got.URL, want, want.URL)
	}
	return true
}

func checkResponse(t *testing.T, buf []byte, req *http.Request) bool {
	t.Helper()
	got, headLen, ok := ParseResponse(buf, req)
	if !ok {
		if got != nil || headLen != 0 {
			t.Fatalf("declined %q with a response", buf)
		}
		return false
	}
	want, consumed, err := stdReadResponse(buf, req)
	if err != nil {
		t.Fatalf("accepted %q, which net/http refuses: %v", buf, err)
	}
	if headLen != consumed {
		t.Fatalf("%q: head length %d, net/http consumed %d", buf, headLen, consumed)
	}
	if (got.Body == http.NoBody) != (want.Body == http.NoBody) || got.Body != nil && got.Body != http.NoBody {
		t.Fatalf("%q: Body %#v, net/http's %#v", buf, got.Body, want.Body)
	}
	got.Body, want.Body = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got  %#v\n want %#v", buf, got, want)
	}
	return true
}

func TestCommonRequestsAccepted(t *testing.T) {
	for name, head := range commonRequests {
		if !checkRequest(t, []byte(head)) {
			t.Errorf("%s: declined %q", name, head)
		}
	}
}

func TestRequestsOutOfSubsetDeclined(t *testing.T) {
	for name, head := range outOfSubset {
		if checkRequest(t, []byte(head)) {
			t.Errorf("%s: accepted %q", name, head)
		}
	}
	for _, head := range invalidRequests {
		if _, err := stdReadRequest([]byte(head)); err == nil {
			t.Errorf("net/http accepts %q, which is meant to be invalid", head)
		}
		if checkRequest(t, []byte(head)) {
			t.Errorf("accepted %q", head)
		}
	}
}

func TestCommonResponsesAccepted(t *testing.T) {
	for name, entry := range commonResponses {
		req, buf := splitResponse(entry)
		if !checkResponse(t, buf, req) {
			t.Errorf("%s: declined %q", name, buf)
		}
	}
}

func TestResponsesOutOfSubsetDeclined(t *testing.T) {
	for name, entry := range outOfSubsetResponses {
		req, buf := splitResponse(entry)
		if checkResponse(t, buf, req) {
			t.Errorf("%s: accepted %q", name, buf)
		}
	}
}

// Every head of the tables, cut short, is declined: ParseResponse sees what
// happens to be buffered.
func TestCutResponsesDeclined(t *testing.T) {
	for _, entry := range commonResponses {
		req, buf := splitResponse(entry)
		end := bytes.Index(buf, crlfcrlf) + 3
		for n := range end {
			if checkResponse(t, buf[:n], req) {
				t.Errorf("accepted %q, cut from %q", buf[:n], buf)
			}
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, head := range commonRequests {
		f.Add([]byte(head))
	}
	for _, head := range outOfSubset {
		f.Add([]byte(head))
	}
	for _, head := range invalidRequests {
		f.Add([]byte(head))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		checkRequest(t, head)
	})
}

// fuzzMethods: the request a fuzzed response answers.
var fuzzMethods = []string{"", "GET", "HEAD", "POST", "head"}

func FuzzParseResponse(f *testing.F) {
	add := func(entry string) {
		method, buf, _ := strings.Cut(entry, " ")
		for i, m := range fuzzMethods {
			if m == method || i == 0 && method == "-" {
				f.Add([]byte(buf), uint8(i))
			}
		}
	}
	for _, entry := range commonResponses {
		add(entry)
	}
	for _, entry := range outOfSubsetResponses {
		add(entry)
	}
	f.Fuzz(func(t *testing.T, buf []byte, method uint8) {
		var req *http.Request
		if m := fuzzMethods[int(method)%len(fuzzMethods)]; m != "" {
			req = &http.Request{Method: m}
		}
		checkResponse(t, buf, req)
	})
}

func BenchmarkParseRequest(b *testing.B) {
	head := []byte(goClientHead)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseRequest(head); !ok {
			b.Fatal("declined")
		}
	}
}

func BenchmarkReadRequest(b *testing.B) {
	head := []byte(goClientHead)
	src := bytes.NewReader(head)
	br := bufio.NewReader(src)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(head)
		br.Reset(src)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	buf := []byte(goServerResponse)
	req := &http.Request{Method: "GET"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := ParseResponse(buf, req); !ok {
			b.Fatal("declined")
		}
	}
}

func BenchmarkReadResponse(b *testing.B) {
	buf := []byte(goServerResponse)
	req := &http.Request{Method: "GET"}
	src := bytes.NewReader(buf)
	br := bufio.NewReader(src)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(buf)
		br.Reset(src)
		if _, err := http.ReadResponse(br, req); err != nil {
			b.Fatal(err)
		}
	}
}
