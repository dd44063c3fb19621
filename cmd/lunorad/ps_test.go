package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPsReadsTheControlPlaneShapes runs `lunorad ps` against a server that
// answers as the router does: lists wrapped in {"containers": [...]} and
// {"instances": [...]}.
func TestPsReadsTheControlPlaneShapes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/containers":
			_, _ = w.Write([]byte(`{"containers":[{"name":"web","instances":1},{"name":"idle","instances":0}]}`))
		case "/v1/containers/web/instances":
			_, _ = w.Write([]byte(`{"instances":[{"container":"web","instance":"b","state":{"status":"stopped_with_code","lastChange":1,"exitCode":3},"generation":1},` +
				`{"container":"web","instance":"a","state":{"status":"healthy","lastChange":1},"containerId":"0123456789abcdef","ports":{"8080":"127.0.0.1:4321"},"generation":2,"inFlight":1}]}`))
		case "/v1/containers/idle/instances":
			_, _ = w.Write([]byte(`{"instances":[]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	cmd := psCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--addr", strings.TrimPrefix(srv.URL, "http://")})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("ps: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("ps printed %d lines, want a header and 2 instances:\n%s", len(lines), out.String())
	}
	for i, want := range [][]string{
		{"web", "a", "healthy", "127.0.0.1:4321->8080", "2", "1", "-", "0123456789ab"},
		{"web", "b", "stopped_with_code(3)", "-", "1", "0"},
	} {
		fields := strings.Fields(lines[i+1])
		for j, w := range want {
			if j >= len(fields) || fields[j] != w {
				t.Errorf("line %d = %q, want fields starting %v", i+1, lines[i+1], want)
				break
			}
		}
	}
}
