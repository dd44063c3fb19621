package routing_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// any and pool route to instances pool-<n>, n uniform below the size:
// lunora-pool-size, else maxInstances, else 3. The instance named by
// lunora-instance is the one that answered (each has its own container).
func TestAnyAndPoolPickPoolInstances(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
  pair:
    image: %[1]s
    defaultPort: 8080
    maxInstances: 2
`, daemontest.Options{})
	hostOf := map[string]string{} // "container/instance" -> HOSTNAME of the container that answered

	// pick sends requests until every instance in want has answered (at
	// most max requests) and fails on any other instance.
	pick := func(t *testing.T, path string, hdr http.Header, want []string, max int) {
		t.Helper()
		container := strings.Split(path, "/")[3]
		seen := map[string]int{}
		for i := 0; i < max && len(seen) < len(want); i++ {
			e, resp := echo(t, h, http.MethodGet, path+"/who", hdr)
			inst := resp.Header.Get("Lunora-Instance")
			if !slices.Contains(want, inst) {
				t.Fatalf("%s: request %d answered by %q, want one of %v", path, i, inst, want)
			}
			seen[inst]++
			key := container + "/" + inst
			if prev, ok := hostOf[key]; ok && prev != e.Env["HOSTNAME"] {
				t.Fatalf("%s answered from container %s, then from %s", key, prev, e.Env["HOSTNAME"])
			}
			hostOf[key] = e.Env["HOSTNAME"]
			if _, leaked := e.Headers["Lunora-Pool-Size"]; leaked {
				t.Errorf("lunora-pool-size reached the app")
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%s: %d requests reached only %v, want each of %v", path, max, seen, want)
		}
	}

	t.Run("size from lunora-pool-size", func(t *testing.T) {
		one := http.Header{"Lunora-Pool-Size": {"1"}}
		for range 5 { // header beats maxInstances; always pool-0
			pick(t, anyPath("pair"), one, []string{"pool-0"}, 1)
			pick(t, poolPath("pair"), one, []string{"pool-0"}, 1)
		}
	})
	t.Run("size from maxInstances", func(t *testing.T) {
		pick(t, anyPath("pair"), nil, []string{"pool-0", "pool-1"}, 40)
		pick(t, poolPath("pair"), nil, []string{"pool-0", "pool-1"}, 40)
	})
	t.Run("default size 3", func(t *testing.T) {
		pick(t, anyPath("web"), nil, []string{"pool-0", "pool-1", "pool-2"}, 80)
		pick(t, poolPath("web"), nil, []string{"pool-0", "pool-1", "pool-2"}, 80)
	})
	t.Run("invalid size is a 400", func(t *testing.T) {
		for _, v := range []string{"0", "-1", "two", "1.5"} {
			resp, body := h.Do(t, http.MethodGet, anyPath("web")+"/", nil, http.Header{"Lunora-Pool-Size": {v}})
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "lunora-pool-size") {
				t.Errorf("lunora-pool-size %q: %d %q, want a 400 naming the header", v, resp.StatusCode, body)
			}
		}
	})

	// The engine agrees: one container per pool instance, and only those.
	byInstance := map[string]int{}
	for _, c := range daemontest.Owned(t, h.Config) {
		byInstance[c.Container+"/"+c.Instance]++
	}
	want := []string{"pair/pool-0", "pair/pool-1", "web/pool-0", "web/pool-1", "web/pool-2"}
	for _, k := range want {
		if byInstance[k] != 1 {
			t.Errorf("%s has %d containers, want 1 (all: %v)", k, byInstance[k], byInstance)
		}
	}
	if len(byInstance) != len(want) {
		t.Errorf("containers %v, want exactly %v", byInstance, want)
	}
}
