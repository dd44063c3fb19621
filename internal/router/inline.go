package router

import (
	"bufio"
	"context"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
)

// The inline forwarder: what httputil.ReverseProxy does for a plain HTTP/1.1
// exchange, done on the handler's goroutine over connPool. It exists for
// speed (BENCHMARKS.md: the warm path); its output on the wire is meant to
// be the ReverseProxy path's, and the router's tests run both. Requests it
// does not take (see inlineEligible) go through ReverseProxy unchanged.

// inlineMaxBody is the largest request body sent inline. The body is
// written before the response is read; a body this small fits the socket
// buffers, so a container that answers without reading it cannot stall us.
const inlineMaxBody = 64 << 10

// hopHeaders are removed in both directions (RFC 7230 §6.1), as
// ReverseProxy removes them.
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// inlineEligible reports whether r can be forwarded inline: no protocol
// switch, no Expect, no request trailers, and either no body or a buffered
// one of known length up to inlineMaxBody.
func inlineEligible(r *http.Request, body requestBody) bool {
	if r.Header["Upgrade"] != nil || r.Header["Expect"] != nil || len(r.Trailer) > 0 {
		return false
	}
	if !body.replayable {
		return false
	}
	if body.buf == nil {
		return true
	}
	return r.ContentLength == int64(len(body.buf)) && len(body.buf) <= inlineMaxBody
}

// outboundRequest writes one inline request to the container.
type outboundRequest struct {
	in   *http.Request
	path string // raw path to forward
	body []byte
}

// headerKeys recycles the slices writeTo sorts header names in.
var headerKeys = sync.Pool{New: func() any { s := make([]string, 0, 16); return &s }}

// writeTo writes the request as http.Request.Write would write
// ReverseProxy's outbound request: request line with the raw path and
// query, Host: container, User-Agent only when the client sent one,
// Content-Length for a body (and 0 for an empty POST, PUT or PATCH), then
// the client's headers in sorted order without hop-by-hop and tuning headers.
func (o *outboundRequest) writeTo(w *bufio.Writer) error {
	in := o.in
	w.WriteString(in.Method)
	w.WriteByte(' ')
	w.WriteString(o.path)
	if in.URL.RawQuery != "" || in.URL.ForceQuery {
		w.WriteByte('?')
		w.WriteString(in.URL.RawQuery)
	}
	w.WriteString(" HTTP/1.1\r\nHost: container\r\n")
	// The Connection header is parsed once per request (nil without one).
	listed := connectionListed(in.Header)
	if ua := in.Header.Get("User-Agent"); ua != "" && !slices.Contains(listed, "User-Agent") {
		writeHeaderLine(w, "User-Agent", ua)
	}
	switch {
	case len(o.body) > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(o.body)))
		w.WriteString("\r\n")
	case in.Method == http.MethodPost || in.Method == http.MethodPut || in.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}

	kp := headerKeys.Get().(*[]string)
	keys := (*kp)[:0]
	for k := range in.Header {
		if !skipOutbound(k, listed) {
			keys = append(keys, k)
		}
	}
	// Te is hop-by-hop, but "trailers" in it is passed on as the only value.
	teTrailers := httpguts.HeaderValuesContainsToken(in.Header["Te"], "trailers")
	if teTrailers {
		keys = append(keys, "Te")
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "Te" && teTrailers {
			w.WriteString("Te: trailers\r\n")
			continue
		}
		for _, v := range in.Header[k] {
			writeHeaderLine(w, k, v)
		}
	}
	clear(keys)
	*kp = keys[:0]
	headerKeys.Put(kp)

	w.WriteString("\r\n")
	_, err := w.Write(o.body)
	return err
}

// skipOutbound reports whether header k of the client's request stays out
// of the forwarded one; listed is what its Connection header names.
func skipOutbound(k string, listed []string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true // written above, or framing of the client's hop
	}
	if slices.Contains(hopHeaders[:], k) || slices.Contains(tuningHeaders[:], k) {
		return true
	}
	if slices.Contains(forwardingHeaders[:], k) {
		return false // the client's are put back whatever Connection says (see rewrite)
	}
	return slices.Contains(listed, k)
}

// connectionListed returns the header names h's Connection header lists,
// canonical, which makes them hop-by-hop (RFC 7230 §6.1); nil when there is
// no Connection header.
func connectionListed(h http.Header) []string {
	var names []string
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				names = append(names, http.CanonicalHeaderKey(sf))
			}
		}
	}
	return names
}

func writeHeaderLine(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(textproto.TrimString(v))
	w.WriteString("\r\n")
}

// isReplayable is net/http's rule for sending a request again after a
// kept-alive connection failed before any response byte.
func isReplayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := r.Header["Idempotency-Key"]
	_, xkey := r.Header["X-Idempotency-Key"]
	return key || xkey
}

// forwardInline is one attempt's proxying through conns, recording the
// outcome in a exactly as the ReverseProxy callbacks do.
func (rt *Router) forwardInline(ctx context.Context, w http.ResponseWriter, in *http.Request, a *attempt, conns *connPool, body []byte) {
	out := &outboundRequest{in: in, path: a.path, body: body}
	res, err := conns.roundTrip(ctx, a.addr, in, exchange{
		writeRequest: out.writeTo,
		replayable:   isReplayable(in),
		wrote:        func() { a.wrote.Store(true) },
		got1xx: func(code int, header http.Header) {
			h := w.Header()
			copyHeader(h, header)
			w.WriteHeader(code)
			clear(h)
		},
	})
	if err != nil {
		a.err = err
		return
	}
	if a.retry5xx && res.StatusCode >= 500 {
		a.status = res.StatusCode
		a.err = errRetryResponse
		_ = res.Body.Close()
		return
	}
	a.responded = true
	a.status = res.StatusCode
	a.lease.Streaming()

	removeHopByHop(res.Header)
	h := w.Header()
	adoptHeader(h, res.Header)
	h.Set(headerInstance, a.instanceHeader)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)

	if res.Body != http.NoBody {
		rt.copyInlineBody(ctx, w, res, a)
	}

	if len(res.Trailer) > 0 {
		// Forces chunking, so a short body does not get a Content-Length
		// and lose its trailers (as ReverseProxy does).
		_ = http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		copyHeader(h, res.Trailer)
		return
	}
	for k, vv := range res.Trailer {
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// copyInlineBody streams the response body to the client. Like
// ReverseProxy with lunorad's settings, it flushes every write for
// event streams, bodies of unknown length and bodies larger than one copy
// buffer; any other body is flushed once all of its Content-Length bytes
// are copied, so the client does not wait for the bookkeeping that follows
// (the bytes are those the server would write at the end).
// A body that breaks off aborts the client's response (http.ErrAbortHandler),
// so the client sees a truncated response, never a short complete one.
func (rt *Router) copyInlineBody(ctx context.Context, w http.ResponseWriter, res *http.Response, a *attempt) {
	defer res.Body.Close()
	var flush func() error
	if isEventStream(res.Header.Get("Content-Type")) || res.ContentLength < 0 || res.ContentLength > copyBufferSize {
		flush = http.NewResponseController(w).Flush
		if _, typed := res.Header["Content-Type"]; typed {
			// Headers go out before the first byte of a stream. Without a
			// Content-Type they wait for it, so the server can sniff one,
			// as it (nearly always) does on the ReverseProxy path.
			_ = flush()
		}
	}
	bp := rt.buffers.get()
	defer rt.buffers.put(bp)
	buf := *bp
	t := toucher{lease: a.lease, clock: a.clock}
	var copied int64
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			t.touch()
			if _, werr := w.Write(buf[:n]); werr != nil {
				panic(http.ErrAbortHandler) // the client is gone mid-body
			}
			copied += int64(n)
			switch {
			case flush != nil:
				_ = flush()
			case copied == res.ContentLength:
				// The whole body is here: the client gets it now, not
				// after the bookkeeping that follows.
				_ = http.NewResponseController(w).Flush()
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			if ctx.Err() == nil {
				rt.log.Info("reading the container's response body failed; the client's response is cut short",
					zap.String("instance", a.instanceHeader), zap.Error(rerr))
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// isEventStream reports whether a Content-Type is text/event-stream, as
// ReverseProxy decides it, without parsing the common types that cannot be.
func isEventStream(contentType string) bool {
	const es = "text/event-stream"
	contentType = strings.TrimLeft(contentType, " \t")
	if len(contentType) < len(es) || !strings.EqualFold(contentType[:len(es)], es) {
		return false
	}
	ct, _, _ := mime.ParseMediaType(contentType)
	return ct == "text/event-stream"
}

// removeHopByHop deletes the hop-by-hop headers and those the Connection
// header lists.
func removeHopByHop(h http.Header) {
	for _, k := range connectionListed(h) {
		delete(h, k)
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// adoptHeader is copyHeader for a src that nothing else uses (a response
// just parsed): a key new to dst takes src's values as they are, without
// a new slice or canonicalizing a key the parser already canonicalized.
// The slice is capped so that a later Add to dst cannot write into src's
// backing array.
func adoptHeader(dst, src http.Header) {
	for k, vv := range src {
		if _, ok := dst[k]; !ok {
			dst[k] = vv[:len(vv):len(vv)]
			continue
		}
		dst[k] = append(dst[k], vv...)
	}
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}
