// Package routing_test proves the data plane's routing fidelity (issue 4,
// PROTOCOL §2) against the real Docker Engine: get/any/pool picks, what is
// retried and what passes straight through, the contract's exact error
// bodies, instance ids, target ports, large bodies and WebSockets. The
// router's unit tests cover the same rules with fakes; these show they hold
// with real containers, real ports and real crashes. Waits are generous (the
// machine is shared) while the behaviour is asserted exactly.
package routing_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// imageDir is the testserver build context, made once for the package.
var imageDir string

func TestMain(m *testing.M) { daemontest.Main(m, &imageDir) }

// wait bounds anything that involves the engine (builds, starts, stops) on
// a loaded 2-core machine.
const wait = 60 * time.Second

// The contract's data-plane bodies (PROTOCOL §2, cloudflare-containers.md
// §2.3), spelled out here rather than imported: the test must fail if the
// router's constants drift.
const (
	bodyCapacity     = "Failed to start container: Maximum number of running container instances exceeded"
	bodyDisconnected = "Container suddenly disconnected, try again"
	prefixProxyError = "Error proxying request to container: "
	prefixStart      = "Failed to start container: "
	reservedPhrase   = "reserved for Lunora's own container routes"
)

func getPath(container, rawID string) string {
	return "/v1/containers/" + container + "/instances/" + rawID + "/fetch"
}

func anyPath(container string) string  { return "/v1/containers/" + container + "/any/fetch" }
func poolPath(container string) string { return "/v1/containers/" + container + "/pool/fetch" }

// echoed is what the testserver's echo route answers.
type echoed struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawQuery string              `json:"rawQuery"`
	Host     string              `json:"host"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
	Env      map[string]string   `json:"env"`
}

func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("echo body %q: %v", body, err)
	}
	return e
}

// echo sends a request to the echo route through the daemon and decodes the
// answer; anything but a 200 fails the test.
func echo(t *testing.T, h *daemontest.Harness, method, path string, hdr http.Header) (echoed, *http.Response) {
	t.Helper()
	resp, body := h.Do(t, method, path, nil, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, body)
	}
	return decodeEcho(t, body), resp
}

// pathStats mirrors one path's entry of the testserver's GET /stats.
type pathStats struct {
	Count  int            `json:"count"`
	Probes int            `json:"probes"`
	Ports  map[string]int `json:"ports"`
}

// appStats is what the app behind instance rawID has seen, by path, asked
// through the daemon (which starts the instance if it is not running).
func appStats(t *testing.T, h *daemontest.Harness, container, rawID string) map[string]pathStats {
	t.Helper()
	resp, body := h.Get(t, getPath(container, rawID)+"/stats")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats of %s/%s: %d %q", container, rawID, resp.StatusCode, body)
	}
	var rep struct {
		Paths map[string]pathStats `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("stats body %q: %v", body, err)
	}
	return rep.Paths
}

// hits is how many proxied (non-probe) requests for path the app has seen.
func hits(t *testing.T, h *daemontest.Harness, container, rawID, path string) int {
	t.Helper()
	p := appStats(t, h, container, rawID)[path]
	return p.Count - p.Probes
}

// retries reads lunorad_retries_total for one route kind (get, any, pool):
// the attempts made after the first, which is how a test counts attempts
// that never reached an app.
func retries(t *testing.T, h *daemontest.Harness, kind string) int {
	t.Helper()
	resp, body := h.Get(t, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	series := `lunorad_retries_total{kind="` + kind + `"} `
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no %s series in /metrics", series)
	return 0
}

// rawRequest sends a request whose target is written byte for byte: Go's
// client would re-escape backslashes and dot segments, which are exactly
// the spellings under test.
func rawRequest(t *testing.T, h *daemontest.Harness, method, target string) (*http.Response, string) {
	t.Helper()
	addr := strings.TrimPrefix(h.Base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, addr); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp, string(b)
}

// isPlainText checks the content type of the contract's error bodies.
func isPlainText(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain")
}
