package httpfront

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The response writer. It follows net/http's response and chunkWriter
// (Go 1.26, server.go) for HTTP/1.1 requests whose body has been read in
// full, so that a client sees the same bytes whichever server answered:
// the same 2048-byte buffer before the framing decision, Content-Length
// for a short complete body, chunking otherwise, Content-Type sniffing, a
// Date, 1xx and no-body status handling, trailers. The tests compare the two
// servers on the wire.

// bufferBeforeChunkingSize is net/http's: a handler that finishes within
// it gets a Content-Length.
const bufferBeforeChunkingSize = 2048

var (
	crlf                    = []byte("\r\n")
	excludedHeadersNoBody   = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}
	suppressedHeaders304    = []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	suppressedHeadersNoBody = []string{"Content-Length", "Transfer-Encoding"}
)

// response is the http.ResponseWriter of one request served here. One is
// kept per connection and reset for each request.
type response struct {
	c   *conn
	req *http.Request

	handlerHeader http.Header
	// sent is the header as of WriteHeader (net/http's cw.header): nil
	// when the handler never called Header, a clone otherwise, so that
	// changes after WriteHeader (trailer values) are not sent as headers.
	sent         http.Header
	sentShared   bool // sent is handlerHeader itself (written at WriteHeader)
	calledHeader bool

	wroteHeader   bool // WriteHeader called with a final status
	status        int
	contentLength int64 // declared or computed; -1 unknown
	written       int64
	handlerDone   bool
	closeAfter    bool
	trailers      []string // declared with the Trailer header

	w  *bufio.Writer // bufferBeforeChunkingSize, in front of cw
	cw chunkWriter
}

// chunkWriter writes the header on first use and frames the body.
type chunkWriter struct {
	res         *response
	wroteHeader bool
	chunking    bool
}

func (c *conn) newResponse(req *http.Request) *response {
	w := c.res
	if w == nil {
		w = &response{c: c}
		w.cw.res = w
		w.w = bufio.NewWriterSize(&w.cw, bufferBeforeChunkingSize)
		c.res = w
	}
	w.req = req
	w.handlerHeader = make(http.Header)
	w.sent, w.sentShared = nil, false
	w.calledHeader = false
	w.wroteHeader = false
	w.status = 0
	w.contentLength = -1
	w.written = 0
	w.handlerDone = false
	w.closeAfter = req.Close
	w.trailers = w.trailers[:0]
	w.cw.wroteHeader = false
	w.cw.chunking = false
	w.w.Reset(&w.cw)
	return w
}

func (w *response) Header() http.Header {
	if w.sent == nil && w.wroteHeader && !w.cw.wroteHeader {
		w.sent = w.handlerHeader.Clone()
	}
	w.calledHeader = true
	return w.handlerHeader
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.s.logf("http: superfluous response.WriteHeader call (status %d)", code)
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// Informational: sent at once, the handler's header map kept.
		writeStatusLine(w.c.bw, code)
		_ = w.handlerHeader.WriteSubset(w.c.bw, excludedHeadersNoBody)
		_, _ = w.c.bw.Write(crlf)
		_ = w.c.bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	clInvalid := false
	if cl := first(w.handlerHeader, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			clInvalid = true
		}
	}
	if w.calledHeader && w.sent == nil {
		if !clInvalid && w.headerFinal() {
			// Nothing the body could change: write the header now,
			// which spares net/http's snapshot of it (a proxied
			// response always gets here).
			w.sent, w.sentShared = w.handlerHeader, true
			w.cw.writeHeader(nil)
			return
		}
		w.sent = w.handlerHeader.Clone()
	}
	if clInvalid {
		w.c.s.logf("http: invalid Content-Length of %q", w.handlerHeader.Get("Content-Length"))
		w.handlerHeader.Del("Content-Length")
	}
}

// headerFinal reports whether writeHeader's output no longer depends on
// the body or on the handler finishing: a valid Content-Length and a
// Content-Type are set (or the status allows no body), and there are no
// trailers or Transfer-Encoding to account for.
func (w *response) headerFinal() bool {
	h := w.handlerHeader
	if bodyAllowedForStatus(w.status) {
		if w.contentLength < 0 {
			return false
		}
		if _, ok := h["Content-Type"]; !ok {
			return false
		}
	}
	if _, ok := h["Trailer"]; ok {
		return false
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return false
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return false
		}
	}
	return true
}

func (w *response) Write(p []byte) (int, error) { return w.write(len(p), p, "") }

// WriteString keeps strings on bufio's string path, as net/http does (it
// chunks a large string at the buffer size where a large []byte is
// written through).
func (w *response) WriteString(s string) (int, error) { return w.write(len(s), nil, s) }

func (w *response) write(lenData int, dataB []byte, dataS string) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if lenData == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(lenData)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if dataB != nil {
		return w.w.Write(dataB)
	}
	return w.w.WriteString(dataS)
}

// sniffLen is how much http.DetectContentType looks at.
const sniffLen = 512

// ReadFrom is net/http's: the first sniffLen bytes are written as usual
// (so the type can be sniffed and the header waits for the source), then
// the rest goes straight to the socket when the body is not chunked.
func (w *response) ReadFrom(src io.Reader) (n int64, err error) {
	buf := make([]byte, 32<<10)
	if !w.cw.wroteHeader {
		n0, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(src, sniffLen), buf)
		n += n0
		if err != nil || n0 < sniffLen {
			return n, err
		}
	}
	_ = w.w.Flush()
	_ = w.cw.flush()
	rf, ok := w.c.rwc.(io.ReaderFrom)
	if ok && !w.cw.chunking && bodyAllowedForStatus(w.status) && w.req.Method != http.MethodHead {
		n0, err := rf.ReadFrom(src)
		n += n0
		w.written += n0
		return n, err
	}
	n0, err := io.CopyBuffer(writerOnly{w}, src, buf)
	return n + n0, err
}

// writerOnly hides ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

func (w *response) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController calls.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.w.Flush()
	e2 := w.cw.flush()
	if err == nil {
		err = e2
	}
	return err
}

// finish completes the response after the handler returned, and reports
// whether the connection may carry another request.
func (w *response) finish() (reuse bool) {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.w.Flush()
	w.cw.close()
	if err := w.c.bw.Flush(); err != nil {
		return false
	}
	switch {
	case w.closeAfter:
		return false
	case w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written:
		// Did not write what it declared: the client's framing is off.
		return false
	}
	return !w.c.writeFailed
}

func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return
	}
	w.trailers = append(w.trailers, k)
}

func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

func (cw *chunkWriter) Write(p []byte) (n int, err error) {
	if !cw.wroteHeader {
		cw.writeHeader(p)
	}
	if cw.res.req.Method == http.MethodHead {
		return len(p), nil // eaten
	}
	bw := cw.res.c.bw
	if cw.chunking {
		if _, err = fmt.Fprintf(bw, "%x\r\n", len(p)); err != nil {
			_ = cw.res.c.rwc.Close()
			return 0, err
		}
	}
	n, err = bw.Write(p)
	if cw.chunking && err == nil {
		_, err = bw.Write(crlf)
	}
	if err != nil {
		_ = cw.res.c.rwc.Close()
	}
	return n, err
}

func (cw *chunkWriter) flush() error {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	return cw.res.c.bw.Flush()
}

func (cw *chunkWriter) close() {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	if cw.chunking {
		bw := cw.res.c.bw
		_, _ = bw.WriteString("0\r\n")
		if trailers := cw.res.finalTrailers(); trailers != nil {
			_ = trailers.Write(bw)
		}
		_, _ = bw.WriteString("\r\n")
	}
}

// writeHeader decides the framing and writes the status line and header;
// p is the first body chunk (sniffed for a type; its length is the
// Content-Length when the handler has finished). It is net/http's
// chunkWriter.writeHeader for an HTTP/1.1 request with keep-alives on and
// its body fully read.
func (cw *chunkWriter) writeHeader(p []byte) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	w := cw.res
	isHEAD := w.req.Method == http.MethodHead

	// Deletions go to a private copy as in net/http, or else to exclude:
	// the handler's own map is never changed.
	header := w.sent
	owned := header != nil && !w.sentShared
	if header == nil {
		header = w.handlerHeader
	}
	var exclude map[string]bool
	delHeader := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if exclude == nil {
			exclude = make(map[string]bool)
		}
		exclude[key] = true
	}
	var extra extraHeader

	// The fake "Trailer:foo" keys are not headers (see http.TrailerPrefix).
	trailers := false
	for k := range w.sent {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if exclude == nil {
				exclude = make(map[string]bool)
			}
			exclude[k] = true
			trailers = true
		}
	}
	for _, v := range w.sent["Trailer"] {
		trailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}

	te := first(header, "Transfer-Encoding")
	hasTE := te != ""

	_, hasCLHeader := header["Content-Length"]
	if w.handlerDone && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !hasCLHeader && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		extra.contentLength = strconv.Itoa(len(p))
	}
	hasCL := w.contentLength != -1

	// net/http turns keep-alives off while it shuts down, read once here.
	closing := w.c.s.closing.Load()
	if first(header, "Connection") == "close" || closing {
		w.closeAfter = true
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		hasCE := first(header, "Content-Encoding") != ""
		if !hasCE && !haveType && !hasTE && len(p) > 0 {
			extra.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(code) {
			delHeader(k)
		}
	}

	if _, has := header["Date"]; !has {
		extra.date = w.c.s.date()
	}

	if hasCL && hasTE && te != "identity" {
		w.c.s.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		delHeader("Content-Length")
		hasCL = false
	}

	switch {
	case isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		delHeader("Transfer-Encoding")
	case hasCL:
		delHeader("Transfer-Encoding")
	case hasTE && te == "identity":
		cw.chunking = false
		w.closeAfter = true
		delHeader("Transfer-Encoding")
	default:
		cw.chunking = true
		extra.transferEncoding = "chunked"
		if hasTE && te == "chunked" {
			delHeader("Transfer-Encoding")
		}
	}
	if cw.chunking {
		delHeader("Content-Length")
	}

	if w.closeAfter && (closing || !hasToken(first(w.sent, "Connection"), "close")) && !isProtocolSwitchResponse(code, header) {
		delHeader("Connection")
		extra.connection = "close"
	}

	bw := w.c.bw
	writeStatusLine(bw, code)
	writeHeaderLines(bw, w.sent, exclude)
	extra.write(bw)
	_, _ = bw.Write(crlf)
}

// first is h.Get(key) for a key already in canonical form, without
// canonicalizing it again.
func first(h http.Header, key string) string {
	if vv := h[key]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

// headerLine is one key of a header and its values, for sorting.
type headerLine struct {
	key    string
	values []string
}

var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// writeHeaderLines writes h as http.Header.WriteSubset does: keys sorted,
// invalid names dropped, each value trimmed with its line breaks turned
// into spaces. It sorts a small array on the stack where WriteSubset
// takes a pooled sorter: this runs once per response.
func writeHeaderLines(bw *bufio.Writer, h http.Header, exclude map[string]bool) {
	var stack [16]headerLine
	lines := stack[:0]
	for k, vv := range h {
		if !exclude[k] {
			lines = append(lines, headerLine{k, vv})
		}
	}
	slices.SortFunc(lines, func(a, b headerLine) int { return strings.Compare(a.key, b.key) })
	for _, l := range lines {
		if !httpguts.ValidHeaderFieldName(l.key) {
			continue
		}
		for _, v := range l.values {
			if strings.ContainsAny(v, "\r\n") {
				v = headerNewlineToSpace.Replace(v)
			}
			_, _ = bw.WriteString(l.key)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(textproto.TrimString(v))
			_, _ = bw.Write(crlf)
		}
	}
}

// extraHeader is what the server adds, written in net/http's order.
type extraHeader struct {
	date             string
	contentLength    string
	contentType      string
	connection       string
	transferEncoding string
}

func (h extraHeader) write(w *bufio.Writer) {
	if h.date != "" {
		_, _ = w.WriteString("Date: ")
		_, _ = w.WriteString(h.date)
		_, _ = w.Write(crlf)
	}
	if h.contentLength != "" {
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.WriteString(h.contentLength)
		_, _ = w.Write(crlf)
	}
	for _, kv := range [...][2]string{{"Content-Type", h.contentType}, {"Connection", h.connection}, {"Transfer-Encoding", h.transferEncoding}} {
		if kv[1] != "" {
			_, _ = w.WriteString(kv[0])
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(kv[1])
			_, _ = w.Write(crlf)
		}
	}
}

func writeStatusLine(bw *bufio.Writer, code int) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		_, _ = bw.WriteString(strconv.Itoa(code))
		_ = bw.WriteByte(' ')
		_, _ = bw.WriteString(text)
		_, _ = bw.WriteString("\r\n")
		return
	}
	_, _ = fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

func suppressedHeaders(status int) []string {
	switch {
	case status == http.StatusNotModified:
		return suppressedHeaders304
	case !bodyAllowedForStatus(status):
		return suppressedHeadersNoBody
	}
	return nil
}

func isProtocolSwitchResponse(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && h.Get("Upgrade") != "" &&
		httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

// hasToken reports whether the comma-separated header value v lists token
// (case-insensitively).
func hasToken(v, token string) bool {
	return httpguts.HeaderValuesContainsToken([]string{v}, token)
}

// foreachHeaderElement calls fn for each non-empty element of the list v.
func foreachHeaderElement(v string, fn func(string)) {
	v = textproto.TrimString(v)
	if v == "" {
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = textproto.TrimString(f); f != "" {
			fn(f)
		}
	}
}

// dateCache is the Date header's value for one second.
type dateCache struct {
	sec  int64
	text string
}
