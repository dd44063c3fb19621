package readiness_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/events"
)

// waitLong bounds every wait on Docker: generous, because the machine is
// shared and loaded; the behaviour itself is asserted exactly.
const waitLong = 60 * time.Second

// appStats is the testserver's GET /stats (times in ms since its process started).
type appStats struct {
	ListeningAt     map[string]float64   `json:"listeningAtMs"`
	ReadyAt         *float64             `json:"readyAtMs"`
	FirstNonProbeAt *float64             `json:"firstNonProbeAtMs"`
	Paths           map[string]pathStats `json:"paths"`
}

type pathStats struct {
	Count   int            `json:"count"`
	Probes  int            `json:"probes"`
	FirstAt float64        `json:"firstAtMs"`
	LastAt  float64        `json:"lastAtMs"`
	Hosts   map[string]int `json:"hosts"`
	Ports   map[string]int `json:"ports"`
}

// path returns the entry of p, the zero value when the app never saw it.
func (s appStats) path(p string) pathStats { return s.Paths[p] }

// statsThroughDaemon reads the app's /stats through the data plane.
func statsThroughDaemon(t *testing.T, h *daemontest.Harness, container, id string) appStats {
	t.Helper()
	resp, body := h.Get(t, fetchPath(container, id, "/stats"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats of %s/%s: %d %q", container, id, resp.StatusCode, body)
	}
	var s appStats
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("stats of %s/%s: %v in %q", container, id, err, body)
	}
	return s
}

// statsDirect reads the app's /stats from its published port, bypassing
// lunorad (and so its readiness gate).
func statsDirect(addr string) (appStats, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/stats")
	if err != nil {
		return appStats{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return appStats{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return appStats{}, fmt.Errorf("status %d: %q", resp.StatusCode, b)
	}
	var s appStats
	if err := json.Unmarshal(b, &s); err != nil {
		return appStats{}, fmt.Errorf("%w in %q", err, b)
	}
	return s, nil
}

func fetchPath(container, id, path string) string {
	return "/v1/containers/" + container + "/instances/" + id + "/fetch" + path
}

// result is one data-plane request made from a goroutine.
type result struct {
	status int
	body   string
	err    error
	doneAt time.Time
}

func (r result) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %q", r.status, r.body)
}

// sendAsync sends GET url from a goroutine; the result arrives on the
// returned channel. The client timeout bounds the goroutine.
func sendAsync(url string, hdr http.Header) <-chan result {
	out := make(chan result, 1)
	go func() {
		out <- send(url, hdr)
	}()
	return out
}

func send(url string, hdr http.Header) result {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return result{err: err, doneAt: time.Now()}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := &http.Client{Timeout: 90 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err, doneAt: time.Now()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(b), err: err, doneAt: time.Now()}
}

// collect waits for every pending request.
func collect(pending []<-chan result) []result {
	out := make([]result, len(pending))
	for i, c := range pending {
		out[i] = <-c
	}
	return out
}

// instanceState is GET .../{id}/state.
type instanceState struct {
	Status   string `json:"status"`
	ExitCode *int   `json:"exitCode"`
}

func stateOf(t *testing.T, h *daemontest.Harness, container, id string) instanceState {
	t.Helper()
	resp, body := h.Get(t, "/v1/containers/"+container+"/instances/"+id+"/state")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("state of %s/%s: %d %s", container, id, resp.StatusCode, body)
	}
	var s instanceState
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("state of %s/%s: %v in %q", container, id, err, body)
	}
	return s
}

// ownedAddr waits until the engine lists a running container for the
// instance and returns the host address of its port.
func ownedAddr(t *testing.T, h *daemontest.Harness, id string, port int) string {
	t.Helper()
	var addr string
	daemontest.Eventually(t, waitLong, "a running container for instance "+id, func() bool {
		for _, c := range daemontest.Owned(t, h.Config) {
			if c.Instance == id && c.Running && c.Ports[port] != "" {
				addr = c.Ports[port]
				return true
			}
		}
		return false
	})
	return addr
}

// runningOwned counts the running containers the engine has for the instance.
func runningOwned(t *testing.T, h *daemontest.Harness, container, id string) int {
	t.Helper()
	n := 0
	for _, c := range daemontest.Owned(t, h.Config) {
		if c.Container == container && c.Instance == id && c.Running {
			n++
		}
	}
	return n
}

// eventLog records GET /v1/events from before the test's first request.
type eventLog struct {
	// mu guards seen.
	mu   sync.Mutex
	seen []events.Event
	// syncs numbers the sentinel instances of sync.
	syncs atomic.Int32
}

// watchEvents subscribes to the daemon's event stream and returns once the
// subscription is live. The reader ends at cleanup, before the daemon stops.
func watchEvents(t *testing.T, h *daemontest.Harness) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Base+"/v1/events", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// The stream has no end, so only ctx bounds it; the first line must come fast.
	connectTimer := time.AfterFunc(30*time.Second, cancel)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/events: %v", err)
	}
	reader := bufio.NewReader(resp.Body)
	first, err := reader.ReadString('\n')
	connectTimer.Stop()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(first, ":") {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %d, first line %q, %v", resp.StatusCode, first, err)
	}
	l := &eventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		for {
			line, err := reader.ReadString('\n')
			if err != nil {
				return
			}
			data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: ")
			if !ok {
				continue
			}
			var e events.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				continue // asserted on through the events that do parse
			}
			l.mu.Lock()
			l.seen = append(l.seen, e)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// of returns the events so far for one instance with the given type.
func (l *eventLog) of(container, id, event string) []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Event
	for _, e := range l.seen {
		if e.Container == container && e.Instance == id && e.Event == event {
			out = append(out, e)
		}
	}
	return out
}

// sync makes sure every event published before it was called has been
// received: it cold-starts a fresh instance of container (a plain one) and
// waits for that instance's start event, which the bus delivers after them.
func (l *eventLog) sync(t *testing.T, h *daemontest.Harness, container string) {
	t.Helper()
	id := fmt.Sprintf("sync-%d", l.syncs.Add(1))
	if resp, body := h.Get(t, fetchPath(container, id, "/greet")); resp.StatusCode != http.StatusOK {
		t.Fatalf("sentinel start of %s/%s: %d %q", container, id, resp.StatusCode, body)
	}
	daemontest.Eventually(t, waitLong, "the sentinel's start event", func() bool {
		return len(l.of(container, id, events.Start)) > 0
	})
}
