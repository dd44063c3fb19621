package routing_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

// The per-call tuning headers are consumed by lunorad, never forwarded;
// everything else the client sent reaches the app, and every response
// names its instance.
func TestTuningHeadersAreRemoved(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	tuning := http.Header{
		"Lunora-Attempts":          {"2"},
		"Lunora-Backoff-Ms":        {"10"},
		"Lunora-Max-Backoff-Ms":    {"20"},
		"Lunora-Pool-Size":         {"1"},
		"Cf-Container-Target-Port": {"8080"},
		"X-Kept":                   {"yes"},
		"Lunora-Other":             {"kept too"}, // only the five tuning headers are lunorad's
	}
	for _, path := range []string{getPath("web", "h"), anyPath("web"), poolPath("web")} {
		e, resp := echo(t, h, http.MethodPost, path+"/hdr", tuning)
		for _, name := range []string{"Lunora-Attempts", "Lunora-Backoff-Ms", "Lunora-Max-Backoff-Ms", "Lunora-Pool-Size", "Cf-Container-Target-Port"} {
			if v, leaked := e.Headers[name]; leaked {
				t.Errorf("%s: tuning header %s reached the app as %v", path, name, v)
			}
		}
		if got := e.Headers["X-Kept"]; len(got) != 1 || got[0] != "yes" {
			t.Errorf("%s: X-Kept = %v", path, got)
		}
		if got := e.Headers["Lunora-Other"]; len(got) != 1 || got[0] != "kept too" {
			t.Errorf("%s: Lunora-Other = %v", path, got)
		}
		if e.Host != "container" {
			t.Errorf("%s: the app saw Host %q, want container", path, e.Host)
		}
		if resp.Header.Get("Lunora-Instance") == "" {
			t.Errorf("%s: no lunora-instance on the response", path)
		}
	}
}

// Bodies up to 8 MiB are kept so that an attempt can be replayed; a larger
// one (announced or not) is streamed once and arrives intact, and pool then
// returns the app's 5xx rather than retrying with a body it no longer has.
func TestLargeBodiesAreSentOnce(t *testing.T) {
	t.Parallel()
	h := daemontest.Start(t, imageDir, webConfig, daemontest.Options{})
	big := make([]byte, 9<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	small := big[:1<<20]
	onePool := http.Header{"Lunora-Pool-Size": {"1"}}

	// post sends body with a Content-Length, or chunked (length unknown)
	// when chunked is set.
	post := func(t *testing.T, path string, body []byte, chunked bool, hdr http.Header) (*http.Response, []byte) {
		t.Helper()
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length from http.NewRequest
		}
		req, err := http.NewRequest(http.MethodPost, h.Base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := (&http.Client{Timeout: wait}).Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("POST %s: reading: %v", path, err)
		}
		return resp, out
	}

	t.Run("9 MiB arrives intact, once", func(t *testing.T) {
		sum := sha256.Sum256(big)
		for i, chunked := range []bool{false, true} {
			resp, out := post(t, getPath("web", "big")+"/trailers", big, chunked, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("chunked=%v: %d %q", chunked, resp.StatusCode, out)
			}
			var got struct {
				BodyBytes int `json:"bodyBytes"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("chunked=%v: %q: %v", chunked, out, err)
			}
			if got.BodyBytes != len(big) || resp.Trailer.Get("X-Checksum") != hex.EncodeToString(sum[:]) {
				t.Errorf("chunked=%v: the app got %d bytes with sha256 %s, want %d bytes with %x",
					chunked, got.BodyBytes, resp.Trailer.Get("X-Checksum"), len(big), sum)
			}
			if n := hits(t, h, "web", "big", "/trailers"); n != i+1 {
				t.Errorf("chunked=%v: /trailers reached the app %d times in all, want %d", chunked, n, i+1)
			}
		}
	})

	t.Run("pool replays a small body, not a large one", func(t *testing.T) {
		cases := []struct {
			name    string
			body    []byte
			chunked bool
			want    int // requests that reach the app
		}{
			{"1 MiB", small, false, 3},
			{"1 MiB chunked", small, true, 3},
			{"9 MiB", big, false, 1},
			{"9 MiB chunked", big, true, 1},
		}
		for _, c := range cases {
			before := hits(t, h, "web", "pool-0", "/status/503")
			resp, out := post(t, poolPath("web")+"/status/503", c.body, c.chunked, onePool)
			if resp.StatusCode != http.StatusServiceUnavailable || string(out) != "status 503" {
				t.Errorf("%s: %d %q, want the app's 503", c.name, resp.StatusCode, out)
			}
			if n := hits(t, h, "web", "pool-0", "/status/503") - before; n != c.want {
				t.Errorf("%s: reached the app %d times, want %d", c.name, n, c.want)
			}
		}
	})
}
