package router

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDecodeID(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr string
	}{
		{"plain", "user-42", "user-42", ""},
		{"encoded slash stays in the id", "a%2Fb", "a/b", ""},
		{"space", "hello%20world", "hello world", ""},
		{"plus is literal in a path", "a+b", "a+b", ""},
		{"unicode", "%C3%A9t%C3%A9-%F0%9F%9A%80", "été-🚀", ""},
		{"raw utf-8 bytes", "été", "été", ""},
		{"256 bytes", strings.Repeat("a", 256), strings.Repeat("a", 256), ""},
		{"256 bytes encoded", strings.Repeat("%41", 256), strings.Repeat("A", 256), ""},
		{"257 bytes", strings.Repeat("a", 257), "", "257 bytes once decoded; the limit is 256"},
		{"empty", "", "", "the id is empty"},
		{"NUL", "a%00b", "", "control character U+0000"},
		{"newline", "a%0Ab", "", "control character U+000A"},
		{"unit separator", "%1F", "", "control character U+001F"},
		{"DEL", "a%7F", "", "control character U+007F"},
		{"C1 control", "a%C2%85", "", "control character U+0085"},
		{"invalid UTF-8", "a%FFb", "", "not valid UTF-8"},
		{"malformed escape", "a%zzb", "", "malformed percent-encoding"},
		{"truncated escape", "a%2", "", "malformed percent-encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeID(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodeID(%q) error = %v, want it to contain %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("decodeID(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestEncodeIDRoundTrips(t *testing.T) {
	for _, id := range []string{"a/b", "hello world", "été-🚀", "pool-2", "50%"} {
		got, err := decodeID(encodeID(id))
		if err != nil || got != id {
			t.Errorf("decodeID(encodeID(%q)) = %q, %v", id, got, err)
		}
	}
	if got := encodeID("a/b c"); got != "a%2Fb%20c" {
		t.Errorf("encodeID(%q) = %q, want a%%2Fb%%20c", "a/b c", got)
	}
}

func TestIsReservedPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/__lunora/x", true},
		{"/__lunora/exec", true},
		{"/__lunora", true},
		{"/__lunora/", true},
		{"//__lunora//exec", true},
		{"/a/../__lunora/x", true},
		{"/a/b/../../__lunora/x", true},
		{"/../../__lunora/x", true},
		{"/./__lunora/x", true},
		{"/%2e%2e/__lunora/x", true},
		{"/a/%2E%2E/__lunora/x", true},
		{"/%5F%5Flunora/x", true},
		{"/%5f%5flunora/x", true},
		{"/__lunora%2Fx", true},
		{"/%255F%255Flunora/x", true}, // double-encoded
		{`\__lunora\x`, true},
		{`/\__lunora\exec`, true},
		{"/a%5C..%5C__lunora/x", true},
		{"/%2F__lunora/x", true},
		{"/%" + strings.Repeat("25", 20) + "41", true}, // still changing after the bound: refused
		{"/%" + strings.Repeat("25", 5) + "5F%" + strings.Repeat("25", 5) + "5Flunora/x", true}, // five levels deep
		{"/__lunora-status", false},
		{"/__LUNORA/x", false},
		{"/__Lunora/x", false},
		{"/a/__lunora/x", false},
		{"/__lunorax", false},
		{"/_lunora/rpc", false},
		{"/", false},
		{"", false},
		{"/api/v1?x=/__lunora/", false},
		{"/100%", false}, // malformed escape: checked as written
	}
	for _, tt := range tests {
		if got := isReservedPath(tt.path); got != tt.want {
			t.Errorf("isReservedPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestRemoveDotSegments(t *testing.T) {
	tests := map[string]string{
		"/a/b/c/./../../g": "/a/g",
		"/../x":            "/x",
		"/a/..":            "/",
		"/a/.":             "/a/",
		"/a/b":             "/a/b",
		"/.hidden/x":       "/.hidden/x",
	}
	for in, want := range tests {
		if got := removeDotSegments(in); got != want {
			t.Errorf("removeDotSegments(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDataRoute(t *testing.T) {
	tests := []struct {
		raw     string
		want    dataRoute
		wantErr string
	}{
		{"/v1/containers/web/instances/a%2Fb/fetch/x/y", dataRoute{kind: kindGet, container: "web", id: "a/b", path: "/x/y"}, ""},
		{"/v1/containers/web/instances/i/fetch", dataRoute{kind: kindGet, container: "web", id: "i", path: "/"}, ""},
		{"/v1/containers/web/any/fetch/", dataRoute{kind: kindAny, container: "web", path: "/"}, ""},
		{"/v1/containers/web/pool/fetch/a%20b", dataRoute{kind: kindPool, container: "web", path: "/a%20b"}, ""},
		{"/v1/containers/web/instances//fetch/", dataRoute{}, "the id is empty"},
		{"/v1/containers//any/fetch/", dataRoute{}, "Invalid container name: the name is empty"},
		{"/v1/containers/w%zz/any/fetch/", dataRoute{}, `Invalid container name "w%zz": malformed percent-encoding`},
		{"/v1/containers/web/instances/i/fetch/__lunora/exec", dataRoute{}, `Path "/__lunora/exec" is reserved for Lunora's own container routes`},
		{"/v1/containers/web/instances/i/fetchers", dataRoute{}, errNotDataRoute.Error()},
		{"/v1/containers/web/instances/i/state", dataRoute{}, errNotDataRoute.Error()},
		{"/v2/containers/web/any/fetch/", dataRoute{}, errNotDataRoute.Error()},
	}
	for _, tt := range tests {
		got, err := parseDataRoute(tt.raw)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseDataRoute(%q) error = %v, want %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseDataRoute(%q) = %+v, %v; want %+v", tt.raw, got, err, tt.want)
		}
	}
}

func TestParseTuning(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		kind    routeKind
		headers map[string]string
		want    tuning
		wantErr string
	}{
		{"get defaults", kindGet, nil, tuning{attempts: 3, backoff: 500 * ms, maxBackoff: 30 * time.Second}, ""},
		{"pool defaults", kindPool, nil, tuning{attempts: 3, backoff: 100 * ms, maxBackoff: 30 * time.Second}, ""},
		{"overrides", kindAny, map[string]string{"lunora-attempts": "5", "lunora-backoff-ms": "0", "lunora-max-backoff-ms": "250", "lunora-pool-size": "7", "cf-container-target-port": "9090"},
			tuning{attempts: 5, backoff: 0, maxBackoff: 250 * ms, poolSize: 7, targetPort: 9090}, ""},
		{"attempts zero", kindGet, map[string]string{"lunora-attempts": "0"}, tuning{}, `Invalid lunora-attempts header "0"`},
		{"attempts negative", kindGet, map[string]string{"lunora-attempts": "-1"}, tuning{}, "Invalid lunora-attempts"},
		{"attempts plus sign", kindGet, map[string]string{"lunora-attempts": "+2"}, tuning{}, "Invalid lunora-attempts"},
		{"attempts float", kindGet, map[string]string{"lunora-attempts": "1.5"}, tuning{}, "Invalid lunora-attempts"},
		{"backoff text", kindGet, map[string]string{"lunora-backoff-ms": "fast"}, tuning{}, "Invalid lunora-backoff-ms"},
		{"max backoff empty", kindGet, map[string]string{"lunora-max-backoff-ms": ""}, tuning{}, "Invalid lunora-max-backoff-ms"},
		{"pool size zero", kindAny, map[string]string{"lunora-pool-size": "0"}, tuning{}, "Invalid lunora-pool-size"},
		{"pool size huge", kindAny, map[string]string{"lunora-pool-size": "99999999999"}, tuning{}, "Invalid lunora-pool-size"},
		{"port zero", kindGet, map[string]string{"cf-container-target-port": "0"}, tuning{}, "Invalid cf-container-target-port"},
		{"port too big", kindGet, map[string]string{"cf-container-target-port": "65536"}, tuning{}, "Invalid cf-container-target-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			got, err := parseTuning(h, tt.kind)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseTuning = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}

	h := http.Header{}
	h.Add("lunora-attempts", "2")
	h.Add("lunora-attempts", "3")
	if _, err := parseTuning(h, kindGet); err == nil || !strings.Contains(err.Error(), "sent 2 times") {
		t.Errorf("repeated header: error = %v", err)
	}
}

func TestTuningWait(t *testing.T) {
	ms := time.Millisecond
	tun := tuning{backoff: 500 * ms, maxBackoff: 30 * time.Second}
	var got []time.Duration
	for k := 1; k <= 9; k++ {
		got = append(got, tun.wait(k))
	}
	want := []time.Duration{500 * ms, 1000 * ms, 2000 * ms, 4000 * ms, 8000 * ms, 16000 * ms, 30000 * ms, 30000 * ms, 30000 * ms}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits = %v, want %v", got, want)
		}
	}
	// Lunora's own clamp example: base 1000, max 5000.
	tun = tuning{backoff: 1000 * ms, maxBackoff: 5000 * ms}
	for k, w := range []time.Duration{1000 * ms, 2000 * ms, 4000 * ms, 5000 * ms, 5000 * ms} {
		if got := tun.wait(k + 1); got != w {
			t.Errorf("wait(%d) = %v, want %v", k+1, got, w)
		}
	}
	if got := (tuning{backoff: time.Hour, maxBackoff: time.Hour}).wait(1_000_000); got != time.Hour {
		t.Errorf("huge attempt index: wait = %v, want the cap", got)
	}
}
