package daemon_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
)

func startDaemon(t *testing.T, yaml string) *daemontest.Harness {
	t.Helper()
	return daemontest.Start(t, imageDir, yaml, daemontest.Options{})
}

const webConfig = `
containers:
  web:
    image: %[1]s
    defaultPort: 8080
`

func TestGetStartsOneContainerPerInstanceAndReusesIt(t *testing.T) {
	h := startDaemon(t, webConfig)

	resp, alice1 := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet?x=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %d %q", resp.StatusCode, alice1)
	}
	if got := resp.Header.Get("lunora-instance"); got != "alice" {
		t.Errorf("lunora-instance = %q, want alice", got)
	}
	_, alice2 := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet")
	if alice1 != alice2 {
		t.Errorf("same id answered from two containers: %q then %q", alice1, alice2)
	}
	_, bob := h.Get(t, "/v1/containers/web/instances/bob/fetch/greet")
	if bob == alice1 {
		t.Errorf("bob shares alice's container: %q", bob)
	}

	list := daemontest.Owned(t, h.Config)
	if len(list) != 2 {
		t.Fatalf("owned containers = %d (%+v), want 2", len(list), list)
	}
	names := map[string]string{}
	for _, c := range list {
		names[c.Instance] = c.Name
		if c.Container != "web" || !c.Running {
			t.Errorf("container %s: labels say container %q, running %v", c.Name, c.Container, c.Running)
		}
		for port, addr := range c.Ports {
			if !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("port %d published on %q, want 127.0.0.1 only", port, addr)
			}
		}
	}
	if names["alice"] == "" || names["bob"] == "" || names["alice"] == names["bob"] {
		t.Fatalf("instance names: %v", names)
	}

	// A restarted instance gets a fresh container under the same deterministic name.
	resp, body := h.Do(t, http.MethodPost, "/v1/containers/web/instances/alice/destroy", nil, nil)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("destroy: %d %s", resp.StatusCode, body)
	}
	_, alice3 := h.Get(t, "/v1/containers/web/instances/alice/fetch/greet")
	if alice3 == alice1 {
		t.Errorf("after destroy alice was served by the old container: %q", alice3)
	}
	for _, c := range daemontest.Owned(t, h.Config) {
		if c.Instance == "alice" && c.Name != names["alice"] {
			t.Errorf("alice's container name changed from %q to %q", names["alice"], c.Name)
		}
	}
}

func TestImageAsDockerfilePathAndFailedBuild(t *testing.T) {
	alt := filepath.Join(imageDir, "Dockerfile.alt")
	df, err := os.ReadFile(filepath.Join(imageDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alt, df, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "Dockerfile"), []byte("FROM scratch\nCOPY nope.txt /x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startDaemon(t, `
containers:
  alt:
    image: %[1]s/Dockerfile.alt
    defaultPort: 8080
  broken:
    image: `+broken+`
    defaultPort: 8080
`)
	resp, body := h.Get(t, "/v1/containers/alt/instances/a/fetch/greet")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello from ") {
		t.Fatalf("Dockerfile-path image: %d %q", resp.StatusCode, body)
	}
	resp, body = h.Get(t, "/v1/containers/broken/instances/a/fetch/")
	if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(body, "Failed to start container: ") {
		t.Fatalf("failed build: %d %q, want 500 Failed to start container: ...", resp.StatusCode, body)
	}
	for _, want := range []string{"COPY nope.txt /x", "nope.txt", "not found"} {
		if !strings.Contains(body, want) {
			t.Errorf("failed build body %q lacks %q (the step and the daemon's message)", body, want)
		}
	}
}

func TestColdStartIsHeldUntilTheAppAnswersAndStartsOnce(t *testing.T) {
	h := startDaemon(t, `
containers:
  slow:
    image: %[1]s
    defaultPort: 8080
    env: {START_DELAY_MS: "1500"}
`)
	const n = 20
	var wg sync.WaitGroup
	bodies := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, err := http.Get(h.Base + "/v1/containers/slow/instances/herd/fetch/greet")
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			codes[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusOK || bodies[i] != bodies[0] {
			t.Errorf("request %d: %d %q (first: %q)", i, codes[i], bodies[i], bodies[0])
		}
	}
	if list := daemontest.Owned(t, h.Config); len(list) != 1 {
		t.Errorf("%d concurrent first requests created %d containers, want 1", n, len(list))
	}
}

func TestPassThrough(t *testing.T) {
	h := startDaemon(t, webConfig)
	prefix := "/v1/containers/web/instances/pt/fetch"

	t.Run("method headers body query host", func(t *testing.T) {
		resp, body := h.Do(t, http.MethodPut, prefix+"/echo/a%20b?x=1&y=%2F", strings.NewReader("payload"),
			http.Header{"X-Custom": {"v1"}, "Lunora-Attempts": {"2"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var echo struct {
			Method, Path, RawPath, RawQuery, Host, Body string
			Headers                                     map[string][]string
		}
		if err := json.Unmarshal([]byte(body), &echo); err != nil {
			t.Fatalf("echo: %v in %q", err, body)
		}
		if echo.Method != "PUT" || echo.Body != "payload" || echo.RawQuery != "x=1&y=%2F" || echo.Host != "container" {
			t.Errorf("echo = %+v", echo)
		}
		if echo.Path != "/echo/a b" {
			t.Errorf("path = %q, want /echo/a b", echo.Path)
		}
		if got := echo.Headers["X-Custom"]; len(got) != 1 || got[0] != "v1" {
			t.Errorf("X-Custom = %v", got)
		}
		if _, leaked := echo.Headers["Lunora-Attempts"]; leaked {
			t.Error("tuning header lunora-attempts reached the container")
		}
	})

	t.Run("trailers", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, h.Base+prefix+"/trailers", pr)
		req.Trailer = http.Header{"X-Req-Trailer": nil}
		go func() {
			_, _ = pw.Write([]byte("chunk"))
			req.Trailer.Set("X-Req-Trailer", "sent")
			_ = pw.Close()
		}()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Trailer.Get("X-Checksum") == "" {
			t.Errorf("response trailer X-Checksum missing; trailers %v, body %q", resp.Trailer, b)
		}
		if !strings.Contains(string(b), "sent") {
			t.Errorf("request trailer not seen by the container: %q", b)
		}
	})

	t.Run("sse flushed as produced", func(t *testing.T) {
		resp, err := http.Get(h.Base + prefix + "/sse?n=3&interval_ms=1500")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("Content-Type = %q", ct)
		}
		first := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(resp.Body).ReadString('\n')
			first <- line
		}()
		select {
		case line := <-first:
			if !strings.HasPrefix(line, "data:") && !strings.HasPrefix(line, "id:") && !strings.HasPrefix(line, "event:") {
				t.Errorf("first SSE line %q", line)
			}
		case <-time.After(1200 * time.Millisecond):
			t.Fatal("first SSE event did not arrive before the second was produced: the proxy buffers")
		}
	})

	t.Run("websocket", func(t *testing.T) {
		url := strings.Replace(h.Base, "http://", "ws://", 1) + prefix + "/ws"
		conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("dial %s: %v (status %d)", url, err, status)
		}
		defer conn.Close()
		for _, msg := range []string{"one", "two"} {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, got, err := conn.ReadMessage()
			if err != nil || string(got) != msg {
				t.Fatalf("echo of %q = %q, %v", msg, got, err)
			}
		}
	})
}

func TestShutdownFinishesInFlightAndRemovesContainers(t *testing.T) {
	h := startDaemon(t, webConfig)
	if resp, body := h.Get(t, "/v1/containers/web/instances/a/fetch/greet"); resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.Get(t, "/v1/containers/web/instances/b/fetch/greet"); resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(h.Base + "/v1/containers/web/instances/a/fetch/sleep?ms=1500")
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inflight <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	time.Sleep(300 * time.Millisecond) // let the slow request reach the container
	h.Stop(t)
	if got := <-inflight; !strings.HasPrefix(got, "200") {
		t.Errorf("in-flight request during shutdown: %s, want 200", got)
	}
	if _, err := http.Get(h.Base + "/healthz"); err == nil {
		t.Error("daemon still accepts requests after shutdown")
	}
	if list := daemontest.Owned(t, h.Config); len(list) != 0 {
		t.Errorf("containers left after shutdown: %+v", list)
	}
}
