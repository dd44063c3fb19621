package routing_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

const webConfig = `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
`

// An unknown container name is a 404 with Cloudflare's plain-text body on
// every route, and starts nothing.
func TestUnknownContainerIs404(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	for _, path := range []string{getPath("nope", "a") + "/", anyPath("nope") + "/x", poolPath("nope") + "/x"} {
		resp, body := h.Get(t, path)
		if resp.StatusCode != http.StatusNotFound || body != `Unknown container "nope"` || !isPlainText(resp) {
			t.Errorf("GET %s: %d %q (%s), want 404 %q as text/plain", path, resp.StatusCode, body,
				resp.Header.Get("Content-Type"), `Unknown container "nope"`)
		}
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Errorf("requests to an unknown container started %+v", owned)
	}
}

// Paths under /__lunora/ are refused in every spelling that resolves there
// (dot segments, backslashes, percent-encoding, double encoding), before any
// container starts; look-alikes that do not resolve there reach the app.
func TestReservedPathsAre400(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	reserved := []string{
		"/__lunora/exec",
		"/__lunora",
		"/__lunora/",
		"/./__lunora/exec",
		"/a/../__lunora/exec",
		"/a/b/../../../__lunora/exec",
		"//__lunora/exec",
		"/%5F%5Flunora/exec",
		"/%5f%5flunora/exec",
		"/__lunora%2Fexec",
		"/a/%2E%2E/__lunora/exec",
		"/a%2F..%2F__lunora/exec",
		"/%255F%255Flunora/exec",
		`/\__lunora\exec`,
		`/a\..\__lunora/exec`,
		"/a/..%5C__lunora/exec",
	}
	for _, p := range reserved {
		for _, route := range []string{getPath("web", "r"), anyPath("web"), poolPath("web")} {
			resp, body := rawRequest(t, h, http.MethodGet, route+p+"?q=1")
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, reservedPhrase) || !isPlainText(resp) {
				t.Errorf("GET %s%s: %d %q, want a text/plain 400 saying %q", route, p, resp.StatusCode, body, reservedPhrase)
			}
		}
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Fatalf("refused requests started containers: %+v", owned)
	}

	// The match is on the first resolved segment, case-sensitive (as in
	// Lunora's guard): these are the app's business.
	allowed := map[string]string{ // raw path -> the path the app decodes
		"/__LUNORA/exec":      "/__LUNORA/exec",
		"/__lunora-status":    "/__lunora-status",
		"/__lunorax/exec":     "/__lunorax/exec",
		"/a/__lunora/exec":    "/a/__lunora/exec",
		"/%5F_lunor/exec":     "/__lunor/exec",
		"/x/..__lunora/exec":  "/x/..__lunora/exec",
		"/__lunora./exec":     "/__lunora./exec",
		"/_%5Flunora%2Dstats": "/__lunora-stats",
	}
	for raw, decoded := range allowed {
		resp, body := rawRequest(t, h, http.MethodGet, getPath("web", "r")+raw)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET .../fetch%s: %d %q, want the app's echo", raw, resp.StatusCode, body)
			continue
		}
		if e := decodeEcho(t, body); e.Path != decoded {
			t.Errorf("GET .../fetch%s: the app saw path %q, want %q", raw, e.Path, decoded)
		}
	}
}

// Ids are one percent-encoded path segment: %2F stays inside the id, each
// distinct decoded id gets its own container, and lunora-instance echoes the
// id percent-encoded so that it decodes back. Empty, over-long (in bytes),
// control-character and malformed ids are refused with 400 before any start.
func TestInstanceIDs(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})

	refused := map[string]string{ // raw id -> what the 400 body must mention
		"":                                  "empty",
		strings.Repeat("x", 257):            "257 bytes",
		strings.Repeat("%C3%A9", 128) + "x": "257 bytes", // 129 runes, 257 bytes
		strings.Repeat("%C3%A9", 129):       "258 bytes",
		"a%00b":                             "control character",
		"bell%07":                           "control character",
		"line%0Abreak":                      "control character",
		"del%7F":                            "control character",
		"nel%C2%85":                         "control character", // U+0085, a C1 control
		"tab%09":                            "control character",
		"bad%zz":                            "", // Go's server refuses the request line itself
		"%FF%FE":                            "UTF-8",
	}
	for raw, want := range refused {
		resp, body := rawRequest(t, h, http.MethodGet, getPath("web", raw)+"/")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, want) || !isPlainText(resp) {
			t.Errorf("id %q: %d %q, want a text/plain 400 mentioning %q", raw, resp.StatusCode, body, want)
		}
	}
	if owned := daemontest.Owned(t, h.Config); len(owned) != 0 {
		t.Fatalf("refused ids started containers: %+v", owned)
	}

	ids := []string{
		"a/b ü",                  // slash, space, unicode: one segment once encoded
		"a%2Fb",                  // a literal percent sign: not the same id as "a/b"
		"a",                      // what "a/b" would collide with if %2F split the path
		strings.Repeat("é", 128), // exactly 256 bytes
		"chat:room#1?x=y&z",      // reserved URL characters
	}
	hostnames := map[string]string{} // hostname -> id
	for _, id := range ids {
		raw := url.PathEscape(id)
		e, resp := echo(t, h, http.MethodGet, getPath("web", raw)+"/whoami?x=1", nil)
		if got := resp.Header.Get("Lunora-Instance"); got != raw {
			t.Errorf("id %q: lunora-instance = %q, want %q", id, got, raw)
		} else if back, err := url.PathUnescape(got); err != nil || back != id {
			t.Errorf("id %q: lunora-instance %q decodes to %q, %v", id, got, back, err)
		}
		if e.Path != "/whoami" || e.RawQuery != "x=1" {
			t.Errorf("id %q: the app saw %q?%q, want /whoami?x=1 (the id must not leak into the path)", id, e.Path, e.RawQuery)
		}
		host := e.Env["HOSTNAME"]
		if other, dup := hostnames[host]; dup {
			t.Errorf("ids %q and %q were served by the same container %s", other, id, host)
		}
		hostnames[host] = id
	}

	// The engine agrees: one container per id, labelled with the decoded id.
	byID := map[string]int{}
	for _, c := range daemontest.Owned(t, h.Config) {
		byID[c.Instance]++
	}
	for _, id := range ids {
		if byID[id] != 1 {
			t.Errorf("id %q has %d containers, want 1 (owned: %v)", id, byID[id], byID)
		}
	}
	if len(byID) != len(ids) {
		t.Errorf("containers for %d ids, want %d: %v", len(byID), len(ids), byID)
	}

	// The same id, spelled with different (equivalent) escapes, is the same
	// instance: %C3%BC and %c3%bc decode alike.
	e, resp := echo(t, h, http.MethodGet, getPath("web", "a%2fb%20%c3%bc")+"/", nil)
	if hostnames[e.Env["HOSTNAME"]] != "a/b ü" {
		t.Errorf("lower-case escapes of %q reached %q", "a/b ü", hostnames[e.Env["HOSTNAME"]])
	}
	if got := resp.Header.Get("Lunora-Instance"); got != url.PathEscape("a/b ü") {
		t.Errorf("lunora-instance for lower-case escapes = %q, want the canonical %q", got, url.PathEscape("a/b ü"))
	}
}
