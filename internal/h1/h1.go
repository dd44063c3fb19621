// Package h1 parses the common HTTP/1.1 request and response heads by hand,
// for the data path, where net/http's readers cost microseconds and about
// ten allocations per head. Anything outside that common subset is
// declined and the caller falls back to net/http, so every head accepted
// here yields exactly what net/http would have returned.
package h1

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

var crlfcrlf = []byte("\r\n\r\n")

// byteSet is a set of ASCII bytes.
type byteSet [256]bool

func newByteSet(members string) *byteSet {
	var s byteSet
	for i := 0; i < len(members); i++ {
		s[members[i]] = true
	}
	return &s
}

func (s *byteSet) all(str string) bool {
	for i := 0; i < len(str); i++ {
		if !s[str[i]] {
			return false
		}
	}
	return true
}

const (
	alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// printable is every visible ASCII byte and the space.
	printable = " !\"#$%&'()*+,-./" + alnum + ":;<=>?@[\\]^_`{|}~"
)

var (
	// tokenBytes: header names textproto accepts and canonicalizes.
	tokenBytes = newByteSet(alnum + "!#$%&'*+-.^_`|~")
	// pathBytes: what url.ParseRequestURI keeps in Path as written, with no
	// RawPath ('%' would need unescaping).
	pathBytes = newByteSet(alnum + "$&+,-./:;=@_~")
	// queryBytes: RawQuery is kept raw; '#' is left to net/http.
	queryBytes = newByteSet(strings.ReplaceAll(printable[1:], "#", ""))
	// valueBytes: header values and reason phrases; no obs-text.
	valueBytes = newByteSet(printable + "\t")
)

// requestAndURL puts a request and its URL in one allocation.
type requestAndURL struct {
	req http.Request
	url url.URL
}

// ParseRequest parses head, one request head through its blank line, as
// http.ReadRequest would. ok is false when the head is outside the subset
// parsed here (not necessarily invalid). Body is http.NoBody when
// ContentLength is 0, and nil otherwise: the caller supplies it.
func ParseRequest(head []byte) (req *http.Request, ok bool) {
	if !bytes.HasSuffix(head, crlfcrlf) {
		return nil, false
	}
	s := string(head)
	method, rest, _ := strings.Cut(s, " ")
	// CONNECT's target is an authority, not a path.
	if method == "" || method == http.MethodConnect || !upperLetters(method) {
		return nil, false
	}
	target, rest, found := strings.Cut(rest, " HTTP/1.1\r\n")
	if !found {
		return nil, false
	}
	u, ok := parseTarget(target)
	if !ok {
		return nil, false
	}
	h, ok := parseFields(rest)
	if !ok {
		return nil, false
	}
	host := h["Host"]
	if len(host) > 1 {
		return nil, false
	}
	if _, chunked := h["Transfer-Encoding"]; chunked {
		return nil, false
	}
	n, _, ok := contentLength(h)
	if !ok {
		return nil, false
	}
	fixPragmaCacheControl(h)

	ru := &requestAndURL{url: u}
	req = &ru.req
	req.Method = method
	req.URL = &ru.url
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	req.Header = h
	req.ContentLength = n
	req.Close = httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if len(host) == 1 {
		// http.ReadRequest moves Host out of the header.
		req.Host = host[0]
		delete(h, "Host")
	}
	req.RequestURI = target
	if n == 0 {
		req.Body = http.NoBody
	}
	return req, true
}

func upperLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// parseTarget parses an origin-form target as url.ParseRequestURI does,
// for targets whose path needs no unescaping.
func parseTarget(target string) (u url.URL, ok bool) {
	if !strings.HasPrefix(target, "/") {
		return u, false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	if !pathBytes.all(path) || !queryBytes.all(query) {
		return u, false
	}
	u.Path = path
	// url.parse: a lone trailing '?' sets ForceQuery; otherwise the query
	// is everything after the first '?'.
	if hasQuery && query == "" {
		u.ForceQuery = true
	} else {
		u.RawQuery = query
	}
	return u, true
}

// parseFields parses s, the header lines after the start line and the
// blank line ending the head, as textproto.Reader.ReadMIMEHeader does for
// lines that are not folded. Values share s's memory and one backing array.
func parseFields(s string) (http.Header, bool) {
	// Every line ends in CRLF, and no line holds a CR: counting CRs counts
	// the lines, blank one included.
	lines := strings.Count(s, "\r") - 1
	if lines < 0 {
		return nil, false
	}
	h := make(http.Header, lines)
	values := make([]string, lines)
	for i := 0; ; i++ {
		end := strings.IndexByte(s, '\r')
		if end < 0 || end+1 == len(s) || s[end+1] != '\n' {
			return nil, false
		}
		line := s[:end]
		s = s[end+2:]
		if line == "" {
			// The blank line must be the head's last.
			return h, s == ""
		}
		key, value, found := strings.Cut(line, ":")
		if !found || key == "" || !tokenBytes.all(key) || !valueBytes.all(value) {
			return nil, false
		}
		// Returns a key already canonical as it is, without allocating.
		key = http.CanonicalHeaderKey(key)
		value = textproto.TrimString(value) // valueBytes leaves only ' ' and '\t' to trim
		if vv, dup := h[key]; dup {
			h[key] = append(vv, value)
			continue
		}
		values[i] = value
		h[key] = values[i : i+1 : i+1]
	}
}

// contentLength returns the one valid Content-Length, or 0 when there is
// none; ok is false for several, or an invalid one.
func contentLength(h http.Header) (n int64, present, ok bool) {
	vv := h["Content-Length"]
	switch len(vv) {
	case 0:
		return 0, false, true
	case 1:
		u, err := strconv.ParseUint(vv[0], 10, 63)
		return int64(u), true, err == nil
	}
	return 0, false, false
}

// fixPragmaCacheControl is net/http's: Pragma: no-cache implies
// Cache-Control: no-cache when that is absent.
func fixPragmaCacheControl(h http.Header) {
	if hp := h["Pragma"]; len(hp) > 0 && hp[0] == "no-cache" {
		if _, present := h["Cache-Control"]; !present {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
}

// ParseResponse parses the response head at the start of buf, what a
// connection's reader has buffered, as http.ReadResponse(r, req) would; req
// may be nil. headLen is the head's length in buf, through its blank line;
// any bytes after it are the body's. ok is false when buf holds no complete
// head or the head is outside the subset parsed here. Body is http.NoBody
// when the response has none, and nil otherwise: NewBody reads it.
func ParseResponse(buf []byte, req *http.Request) (res *http.Response, headLen int, ok bool) {
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 || !bytes.HasPrefix(buf, []byte("HTTP/1.1 ")) {
		return nil, 0, false
	}
	headLen = end + len(crlfcrlf)
	s := string(buf[:headLen])
	statusLine, rest, _ := strings.Cut(s, "\r\n")
	status := statusLine[len("HTTP/1.1 "):]
	code, ok := statusCode(status)
	if !ok || !valueBytes.all(status) {
		return nil, 0, false
	}
	h, ok := parseFields(rest)
	if !ok {
		return nil, 0, false
	}
	if _, chunked := h["Transfer-Encoding"]; chunked {
		return nil, 0, false
	}
	n, hasLength, ok := contentLength(h)
	if !ok {
		return nil, 0, false
	}
	fixPragmaCacheControl(h)

	res = &http.Response{
		Status:     status,
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Request:    req,
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		res.Close = true
		delete(h, "Connection")
	}
	method := http.MethodGet
	if req != nil {
		method = req.Method
	}
	switch {
	case method == http.MethodHead:
		// No body, but the header's length is reported.
		res.ContentLength = -1
		if hasLength {
			res.ContentLength = n
		}
		res.Body = http.NoBody
	case code < 200, code == http.StatusNoContent, code == http.StatusNotModified:
		res.Body = http.NoBody
	case hasLength:
		res.ContentLength = n
		if n == 0 {
			res.Body = http.NoBody
		}
	default:
		// Delimited by the connection's close: left to net/http.
		return nil, 0, false
	}
	return res, headLen, true
}

// statusCode returns the code of a status "ddd" or "ddd reason", for
// codes 100 to 599.
func statusCode(status string) (int, bool) {
	if len(status) < 3 || len(status) > 3 && status[3] != ' ' ||
		status[0] < '1' || status[0] > '5' || !isDigit(status[1]) || !isDigit(status[2]) {
		return 0, false
	}
	return int(status[0]-'0')*100 + int(status[1]-'0')*10 + int(status[2]-'0'), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
