package routing_test

import (
	"net/http"
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// cf-container-target-port: n routes to port n of the container. Published
// are defaultPort, requiredPorts and the image's EXPOSEd ports (the test
// image EXPOSEs 8080); any other port is refused with the contract's proxy
// error, which says how to declare it, and is not retried.
func TestTargetPort(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  two:
    image: %[1]s
    defaultPort: 8080
    requiredPorts: [8080, 9090]
    env: {SECOND_PORT: "9090"}
  exposed:
    image: %[1]s
    defaultPort: 9090
    env: {PORT: "9090", SECOND_PORT: "8080"}
`, daemontest.Options{})

	// answeredOn asks the app which local port received each path; the
	// testserver counts requests by the port they came in on.
	answeredOn := func(t *testing.T, container, id, path string) map[string]int {
		t.Helper()
		p := appStats(t, h, container, id)[path]
		return p.Ports
	}
	send := func(t *testing.T, container, path, port string) {
		t.Helper()
		var hdr http.Header
		if port != "" {
			hdr = http.Header{"Cf-Container-Target-Port": {port}}
		}
		e, resp := echo(t, h, http.MethodGet, getPath(container, "p")+path, hdr)
		if _, leaked := e.Headers["Cf-Container-Target-Port"]; leaked {
			t.Errorf("cf-container-target-port reached the app")
		}
		if resp.Header.Get("Lunora-Instance") != "p" {
			t.Errorf("lunora-instance = %q, want p", resp.Header.Get("Lunora-Instance"))
		}
	}

	t.Run("required port", func(t *testing.T) {
		send(t, "two", "/on-default", "")
		send(t, "two", "/on-8080", "8080")
		send(t, "two", "/on-9090", "9090")
		for path, port := range map[string]string{"/on-default": "8080", "/on-8080": "8080", "/on-9090": "9090"} {
			if got := answeredOn(t, "two", "p", path); len(got) != 1 || got[port] != 1 {
				t.Errorf("%s arrived on ports %v, want once on %s", path, got, port)
			}
		}
	})

	t.Run("exposed port", func(t *testing.T) {
		send(t, "exposed", "/on-default", "")
		send(t, "exposed", "/on-8080", "8080")
		for path, port := range map[string]string{"/on-default": "9090", "/on-8080": "8080"} {
			if got := answeredOn(t, "exposed", "p", path); len(got) != 1 || got[port] != 1 {
				t.Errorf("%s arrived on ports %v, want once on %s", path, got, port)
			}
		}
	})

	t.Run("unpublished port", func(t *testing.T) {
		const want = prefixProxyError + `port 7070 is not published for container "two"; ` +
			`declare it in defaultPort or requiredPorts (or EXPOSE it in the Dockerfile)`
		for _, route := range []string{"get", "pool"} {
			path, kind := getPath("two", "p")+"/", "get"
			if route == "pool" {
				path, kind = poolPath("two")+"/", "pool"
			}
			before := retries(t, h, kind)
			resp, body := h.Do(t, http.MethodGet, path, nil, http.Header{"Cf-Container-Target-Port": {"7070"}})
			if resp.StatusCode != http.StatusInternalServerError || body != want || !isPlainText(resp) {
				t.Errorf("%s to port 7070: %d %q, want 500 %q", route, resp.StatusCode, body, want)
			}
			if resp.Header.Get("Lunora-Instance") == "" {
				t.Errorf("%s to port 7070: no lunora-instance header", route)
			}
			if d := retries(t, h, kind) - before; d != 0 {
				t.Errorf("%s to an unpublished port was retried %d times; no instance can fix it", route, d)
			}
		}
		for _, bad := range []string{"0", "65536", "http", "-1"} {
			resp, body := h.Do(t, http.MethodGet, getPath("two", "p")+"/", nil, http.Header{"Cf-Container-Target-Port": {bad}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("cf-container-target-port %q: %d %q, want 400", bad, resp.StatusCode, body)
			}
		}
	})
}
