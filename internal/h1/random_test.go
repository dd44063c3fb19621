package h1

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// The fuzzers mutate bytes; these tests build heads from the pieces that
// matter (names in any case, odd paths and values, framing headers), so
// that the accepted corners are compared with net/http on every run.

var (
	// Each piece is usually one of the common forms and sometimes (1 in
	// 16) an odd one.
	methods = pieces{
		common: []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"},
		odd:    []string{"CONNECT", "PRI", "get", "G-T", ""},
	}
	targetBytes = pieces{
		common: strings.Split("/abz09-._~$&+,:;=@?", ""),
		odd:    strings.Split("%|!*'()[]{}\"<>^`#\\ \t\xc3\x00", ""),
	}
	fieldNames = pieces{
		common: []string{"Host", "host", "HOST", "Content-Length", "content-length", "Connection", "connection",
			"Pragma", "Cache-Control", "X-A", "x-a", "x-A-b", "Accept", "Cookie", "Keep-Alive", "Content-Type", "X_y", "a-", "-a"},
		odd: []string{"Transfer-Encoding", "Trailer", "Upgrade", "Expect", "X y", "", "X(", "\xc3"},
	}
	fieldValues = pieces{
		common: []string{"", " ", "\t", "a", "no-cache", "close", "keep-alive", "Close, keep-alive", "keep-alive ,close",
			"upgrade,close", "0", "00", "5", " 12 ", "9223372036854775807", "a=b; c=d", "text/html;q=0.9, */*;q=0.8",
			"\"quoted\"", "tab\tinside", "chunked"},
		odd: []string{"-1", "+1", "1_0", "0x1", "99999999999999999999", "identity", "\xc3\xa9", "a\x00b", "a\rb"},
	}
	lineEnds = pieces{common: []string{"\r\n"}, odd: []string{"\n", "\r\n ", "\r\n\t", "\r"}}
	spaces   = pieces{common: []string{"", "", " ", "\t", " \t"}, odd: []string{"\r", "\x0b"}}
	statuses = pieces{
		common: []string{"200 OK", "200", "200 ", "204 No Content", "304 Not Modified", "100 Continue", "101 Switching Protocols",
			"103 Early Hints", "404 Not Found", "500 Internal Server Error", "599 x", "200 \tOK", "200  OK"},
		odd: []string{"600 x", "099 x", "20 x", "2000", "abc", " 200 OK", "200 \xc3"},
	}
	protos = pieces{common: []string{"HTTP/1.1"}, odd: []string{"HTTP/1.0", "HTTP/2.0", "http/1.1", "HTTP/1.1 "}}
)

type pieces struct{ common, odd []string }

func (p pieces) pick(r *rand.Rand) string {
	if r.IntN(16) == 0 {
		return p.odd[r.IntN(len(p.odd))]
	}
	return p.common[r.IntN(len(p.common))]
}

func randomFields(r *rand.Rand, b *strings.Builder) {
	for range r.IntN(8) {
		b.WriteString(fieldNames.pick(r))
		b.WriteString(":")
		b.WriteString(spaces.pick(r))
		b.WriteString(fieldValues.pick(r))
		b.WriteString(spaces.pick(r))
		b.WriteString(lineEnds.pick(r))
	}
	b.WriteString(lineEnds.pick(r))
}

func randomRequestHead(r *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString(methods.pick(r))
	b.WriteString(" /")
	for range r.IntN(12) {
		b.WriteString(targetBytes.pick(r))
	}
	b.WriteString(" ")
	b.WriteString(protos.pick(r))
	b.WriteString(lineEnds.pick(r))
	randomFields(r, &b)
	return []byte(b.String())
}

func randomResponse(r *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString(protos.pick(r))
	b.WriteString(" ")
	b.WriteString(statuses.pick(r))
	b.WriteString(lineEnds.pick(r))
	randomFields(r, &b)
	b.WriteString([]string{"", "hello", "HTTP/1.1 200 OK\r\n\r\n"}[r.IntN(3)])
	return []byte(b.String())
}

func TestRandomRequestsMatchNetHTTP(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	const n = 30000
	for range n {
		if checkRequest(t, randomRequestHead(r)) {
			accepted++
		}
	}
	// Not vacuous: a good share lands in the subset.
	if accepted < n/10 {
		t.Errorf("accepted %d of %d", accepted, n)
	}
}

func TestRandomResponsesMatchNetHTTP(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	const n = 30000
	for range n {
		buf := randomResponse(r)
		var req *http.Request
		if m := fuzzMethods[r.IntN(len(fuzzMethods))]; m != "" {
			req = &http.Request{Method: m}
		}
		if checkResponse(t, buf, req) {
			accepted++
		}
	}
	if accepted < n/10 {
		t.Errorf("accepted %d of %d", accepted, n)
	}
}
