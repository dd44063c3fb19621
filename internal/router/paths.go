package router

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Instance id limits (PROTOCOL §2).
const maxIDBytes = 256

// reservedSegment is the first path segment Lunora keeps for its own
// container routes (/__lunora/exec), refused on the data plane.
const reservedSegment = "__lunora"

// maxDecodeRounds bounds the repeated percent-decoding of a path: each round
// costs a pass over the path, and a path still changing after this many
// rounds is an attack, not a route.
const maxDecodeRounds = 8

// rawRequestPath returns the path exactly as the client sent it, before any
// decoding. The request line is preferred because url.URL keeps RawPath only
// when it is a "valid" encoding, and the id must be decoded from the bytes
// the client chose (a %2F stays inside the id).
func rawRequestPath(r *http.Request) string {
	if u := r.RequestURI; strings.HasPrefix(u, "/") {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			return u[:i]
		}
		return u
	}
	return r.URL.EscapedPath()
}

// rawSegment returns the i-th "/"-separated segment of the raw path
// (segment 0 is the empty string before the leading slash).
func rawSegment(raw string, i int) string {
	for n := 0; n < i; n++ {
		j := strings.IndexByte(raw, '/')
		if j < 0 {
			return ""
		}
		raw = raw[j+1:]
	}
	if j := strings.IndexByte(raw, '/'); j >= 0 {
		return raw[:j]
	}
	return raw
}

// decodeID percent-decodes one raw path segment into an instance id and
// checks it against the contract: 1 to 256 bytes, valid UTF-8, no control
// characters. The error text is the 400 body.
func decodeID(raw string) (string, error) {
	id, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("Invalid instance id %q: malformed percent-encoding", raw)
	}
	if err := validateID(id); err != nil {
		return "", fmt.Errorf("Invalid instance id %q: %w", raw, err)
	}
	return id, nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("the id is empty; it must be 1 to %d bytes", maxIDBytes)
	case len(id) > maxIDBytes:
		return fmt.Errorf("the id is %d bytes once decoded; the limit is %d", len(id), maxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("the id is not valid UTF-8")
	}
	for i, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("the id contains the control character %U at byte %d", r, i)
		}
	}
	return nil
}

// encodeID is the lunora-instance header value: the id percent-encoded as a
// path segment, so it decodes back to the same id.
func encodeID(id string) string { return url.PathEscape(id) }

// isReservedPath reports whether the forwarded path reaches Lunora's own
// container routes in any spelling: after turning backslashes into slashes
// and percent-decoding until stable, then resolving "." and "..", its first
// non-empty segment is exactly (case-sensitively) "__lunora". A path that
// keeps changing after maxDecodeRounds is treated as reserved: it can only be
// an attempt to outrun the check.
func isReservedPath(raw string) bool {
	p := raw
	stable := false
	for range maxDecodeRounds {
		next := strings.ReplaceAll(p, `\`, "/")
		if d, err := url.PathUnescape(next); err == nil {
			next = d
		}
		if next == p {
			stable = true
			break
		}
		p = next
	}
	if !stable {
		return true
	}
	return firstSegment(removeDotSegments(p)) == reservedSegment
}

// firstSegment is the first non-empty "/"-separated segment of p.
func firstSegment(p string) string {
	for seg := range strings.SplitSeq(p, "/") {
		if seg != "" {
			return seg
		}
	}
	return ""
}

// removeDotSegments resolves "." and ".." segments as RFC 3986 §5.2.4 (and
// the WHATWG URL parser that Lunora's guard uses) do; ".." never climbs above
// the root.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// dataRoute is a decoded data-plane request target.
type dataRoute struct {
	kind      routeKind
	container string
	id        string // get only; any and pool pick theirs
	// path is the raw path to forward ("/" when empty), query excluded.
	path string
}

// routeKind is the data-plane flavour of a request.
type routeKind uint8

const (
	kindGet routeKind = iota
	kindAny
	kindPool
	kindControl
	numKinds
)

func (k routeKind) String() string {
	switch k {
	case kindGet:
		return "get"
	case kindAny:
		return "any"
	case kindPool:
		return "pool"
	default:
		return "control"
	}
}

// errNotDataRoute means the target is not a data-plane route after all
// (e.g. ".../fetchers"); the caller answers 404.
var errNotDataRoute = fmt.Errorf("not a data-plane route")

// parseDataRoute decodes /v1/containers/{name}/(instances/{id}|any|pool)/fetch{path}
// from the raw path. Errors other than errNotDataRoute are 400 bodies; the
// route's kind is set whenever it is known, for the metrics.
func parseDataRoute(raw string) (dataRoute, error) {
	const prefix = "/v1/containers/"
	rest, ok := strings.CutPrefix(raw, prefix)
	if !ok {
		return dataRoute{}, errNotDataRoute
	}
	rawName, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return dataRoute{}, errNotDataRoute
	}
	name, err := url.PathUnescape(rawName)
	switch {
	case err != nil:
		return dataRoute{}, fmt.Errorf("Invalid container name %q: malformed percent-encoding", rawName)
	case name == "":
		return dataRoute{}, fmt.Errorf("Invalid container name: the name is empty")
	}
	var d dataRoute
	d.container = name
	switch {
	case strings.HasPrefix(rest, "instances/"):
		rawID, after, ok := strings.Cut(rest[len("instances/"):], "/")
		if !ok {
			return dataRoute{}, errNotDataRoute
		}
		id, err := decodeID(rawID)
		if err != nil {
			return dataRoute{kind: kindGet}, err
		}
		d.kind, d.id, rest = kindGet, id, after
	case strings.HasPrefix(rest, "any/"):
		d.kind, rest = kindAny, rest[len("any/"):]
	case strings.HasPrefix(rest, "pool/"):
		d.kind, rest = kindPool, rest[len("pool/"):]
	default:
		return dataRoute{}, errNotDataRoute
	}
	p, ok := strings.CutPrefix(rest, "fetch")
	if !ok {
		return dataRoute{}, errNotDataRoute
	}
	if isReservedPath(p) {
		return d, fmt.Errorf("Path %q is reserved for Lunora's own container routes and cannot be reached with fetch; use exec to run a command", p)
	}
	switch {
	case p == "":
		p = "/"
	case p[0] != '/':
		return dataRoute{}, errNotDataRoute
	}
	d.path = p
	return d, nil
}

// TakesFastPath reports whether r is a well-formed data-plane request,
// which the daemon's httpfront may serve through DataHandler (everything
// else, the event stream above all, goes through Handler on net/http).
func TakesFastPath(r *http.Request) bool {
	_, err := parseDataRoute(rawRequestPath(r))
	return err == nil
}
