package router

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
	"github.com/lunora/lunorad/internal/lifecycle"
)

func (e *env) post(target, body string) result {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := e.request(http.MethodPost, target, r)
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

func decodeJSON(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not JSON: %q: %v", body, err)
	}
	return m
}

func controlEnv(t *testing.T) *env {
	e := newEnv(t, okBackend)
	e.instances.containers["web"] = &config.Container{
		Name: "web", Image: config.Image{Kind: config.ImageDockerfile, Source: "./containers/web"},
		DefaultPort: 8080, RequiredPorts: []int{8080, 9090},
		InstanceType: config.InstanceType{Name: "standard-1", VCPU: 0.5, MemoryMiB: 4096, DiskMB: 8000},
		MaxInstances: 4, SleepAfter: 10 * time.Minute, HardTimeout: time.Hour,
		Env: map[string]string{"LOG_LEVEL": "debug"}, Secrets: []string{"API_KEY"},
		SecretsStore: map[string]string{"STRIPE_KEY": "STRIPE_SECRET"},
		Labels:       map[string]string{"team": "media"}, EnableInternet: true,
		AllowedHosts: []string{"*.stripe.com"},
		ReadyOn:      []config.ReadyCheck{{Path: "/ready", Port: 8080, Status: 204}},
	}
	e.control.infos["web"] = []lifecycle.InstanceInfo{{Container: "web", Instance: "a"}, {Container: "web", Instance: "b"}}
	return e
}

func TestControlContainers(t *testing.T) {
	e := controlEnv(t)
	r := e.get("/v1/containers")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", r.status, r.header.Get("Content-Type"))
	}
	list := decodeJSON(t, r.body)["containers"].([]any)
	var names []string
	for _, c := range list {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	if !reflect.DeepEqual(names, []string{"big", "none", "web"}) {
		t.Fatalf("names = %v", names)
	}

	one := e.get("/v1/containers/web")
	if one.status != 200 {
		t.Fatalf("%d %q", one.status, one.body)
	}
	var got, want any
	if err := json.Unmarshal([]byte(one.body), &got); err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"name":"web","image":{"kind":"dockerfile","source":"./containers/web"},
		"defaultPort":8080,"requiredPorts":[8080,9090],
		"instanceType":{"name":"standard-1","vcpu":0.5,"memoryMib":4096,"diskMb":8000},
		"maxInstances":4,"sleepAfter":"10m","hardTimeout":"1h",
		"env":{"LOG_LEVEL":"debug"},"secrets":["API_KEY"],"secretsStore":["STRIPE_KEY"],
		"labels":{"team":"media"},"enableInternet":true,"allowedHosts":["*.stripe.com"],"deniedHosts":[],
		"interceptHttps":false,"readyOn":[{"path":"/ready","port":8080,"status":204}],"instances":2}`
	if err := json.Unmarshal([]byte(wantJSON), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET /v1/containers/web =\n%s\nwant\n%s", one.body, wantJSON)
	}
	if strings.Contains(one.body, "STRIPE_SECRET") {
		t.Error("a Secrets Store binding leaked")
	}
	if !reflect.DeepEqual(list[2], got) {
		t.Error("the list and the single view disagree")
	}

	r = e.get("/v1/containers/nope")
	if want := `{"error":{"code":"not_found","message":"Unknown container \"nope\""}}` + "\n"; r.status != 404 || r.body != want {
		t.Errorf("unknown: %d %q, want %q", r.status, r.body, want)
	}
}

func TestControlInstances(t *testing.T) {
	e := controlEnv(t)
	r := e.get("/v1/containers/web/instances")
	if insts := decodeJSON(t, r.body)["instances"].([]any); r.status != 200 || len(insts) != 2 {
		t.Errorf("web instances: %d %q", r.status, r.body)
	}
	if r := e.get("/v1/containers/big/instances"); r.body != `{"instances":[]}`+"\n" {
		t.Errorf("empty list = %q", r.body)
	}
	r = e.get("/v1/containers/web/instances/a%2Fb")
	m := decodeJSON(t, r.body)
	if r.status != 200 || m["instance"] != "a/b" || m["generation"] != float64(3) || m["state"].(map[string]any)["status"] != "healthy" {
		t.Errorf("instance: %d %q", r.status, r.body)
	}
	tests := map[string]string{
		"/v1/containers/web/instances/a/state":       `{"status":"healthy","lastChange":1700000000000}`,
		"/v1/containers/web/instances/crashed/state": `{"status":"stopped_with_code","lastChange":1700000000000,"exitCode":137}`,
	}
	for target, want := range tests {
		if r := e.get(target); r.status != 200 || r.body != want+"\n" {
			t.Errorf("%s = %d %q, want %q", target, r.status, r.body, want)
		}
	}
	r = e.get("/v1/containers/web/instances/a%00/state")
	if m := decodeJSON(t, r.body); r.status != 400 || m["error"].(map[string]any)["code"] != "bad_request" {
		t.Errorf("bad id: %d %q", r.status, r.body)
	}
}

func TestControlStart(t *testing.T) {
	e := controlEnv(t)
	r := e.post("/v1/containers/web/instances/a%20b/start?wait=healthy",
		`{"envVars":{"A":"1"},"entrypoint":["/bin/app","--serve"],"enableInternet":false,"labels":{"k":"v"}}`)
	if r.status != 200 || r.body != `{"status":"healthy","lastChange":1700000000000}`+"\n" {
		t.Fatalf("%d %q", r.status, r.body)
	}
	no := false
	want := lifecycle.StartOptions{EnvVars: map[string]string{"A": "1"}, Entrypoint: []string{"/bin/app", "--serve"},
		EnableInternet: &no, Labels: map[string]string{"k": "v"}, WaitHealthy: true}
	e.control.mu.Lock()
	got := e.control.startOpts
	e.control.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("start options = %+v, want %+v", got, want)
	}
	if calls := e.control.recorded(); !reflect.DeepEqual(calls, []string{"start web/a b"}) {
		t.Errorf("calls = %q", calls)
	}

	if r := e.post("/v1/containers/web/instances/a/start", ""); r.status != 200 {
		t.Errorf("empty body: %d %q", r.status, r.body)
	}
	e.control.mu.Lock()
	got = e.control.startOpts
	e.control.mu.Unlock()
	if !reflect.DeepEqual(got, lifecycle.StartOptions{}) {
		t.Errorf("empty body gave options %+v", got)
	}
	for body, wantMsg := range map[string]string{
		`{"envVars":{},"image":"x"}`: `unknown field \"image\"`,
		`{"entrypoint":"x"}`:         "invalid JSON body",
		`{} {}`:                      "unexpected data after the object",
		`[`:                          "invalid JSON body",
	} {
		r := e.post("/v1/containers/web/instances/a/start", body)
		if r.status != 400 || !strings.Contains(r.body, `"code":"bad_request"`) || !strings.Contains(r.body, wantMsg) {
			t.Errorf("body %s: %d %q, want 400 mentioning %s", body, r.status, r.body, wantMsg)
		}
	}
	if r := e.post("/v1/containers/web/instances/a/start?wait=ready", ""); r.status != 400 {
		t.Errorf("wait=ready: %d %q", r.status, r.body)
	}
}

func TestControlStopSignals(t *testing.T) {
	e := controlEnv(t)
	tests := []struct {
		body       string
		wantSignal string
	}{
		{"", "SIGTERM"},
		{"{}", "SIGTERM"},
		{`{"signal":null}`, "SIGTERM"},
		{`{"signal":"SIGTERM"}`, "SIGTERM"},
		{`{"signal":15}`, "SIGTERM"},
		{`{"signal":"15"}`, "SIGTERM"},
		{`{"signal":"int"}`, "SIGINT"},
		{`{"signal":9}`, "SIGKILL"},
		{`{"signal":"SIGFOO"}`, ""},
		{`{"signal":99}`, ""},
		{`{"signal":true}`, ""},
		{`{"signal":"SIGTERM","force":true}`, ""},
	}
	for _, tt := range tests {
		r := e.post("/v1/containers/web/instances/a/stop", tt.body)
		if tt.wantSignal == "" {
			if r.status != 400 || !strings.Contains(r.body, `"bad_request"`) {
				t.Errorf("stop %s: %d %q, want 400", tt.body, r.status, r.body)
			}
			continue
		}
		e.control.mu.Lock()
		sig := e.control.signal
		e.control.mu.Unlock()
		if r.status != 200 || sig != tt.wantSignal {
			t.Errorf("stop %s: %d, signal %q; want %q", tt.body, r.status, sig, tt.wantSignal)
		}
	}
}

func TestControlDestroyAndRenew(t *testing.T) {
	e := controlEnv(t)
	if r := e.post("/v1/containers/web/instances/a/destroy", ""); r.status != 200 {
		t.Errorf("destroy: %d %q", r.status, r.body)
	}
	if r := e.post("/v1/containers/web/instances/a/renew-activity-timeout", ""); r.status != 200 {
		t.Errorf("renew: %d %q", r.status, r.body)
	}
	if calls := e.control.recorded(); !reflect.DeepEqual(calls, []string{"destroy web/a", "renew web/a"}) {
		t.Errorf("calls = %q", calls)
	}
	if r := e.post("/v1/containers/nope/instances/a/destroy", ""); r.status != 404 {
		t.Errorf("destroy on an unknown container: %d", r.status)
	}
}

func TestControlErrors(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{&lifecycle.CapacityError{Container: "web", Max: 4}, 409, "capacity", "Failed to start container: Maximum number of running container instances exceeded"},
		{&lifecycle.StartError{Container: "web", Err: errors.New("bad image")}, 500, "start_failed", "Failed to start container: bad image"},
		{&lifecycle.BuildError{Container: "web", Err: errors.New("exit 1")}, 500, "start_failed", `Failed to start container: building image for container "web" failed: exit 1`},
		{&lifecycle.NoInstanceError{}, 503, "unavailable", "no container instance available"},
		{lifecycle.ErrShuttingDown, 503, "shutting_down", "lunorad is shutting down"},
		{errors.New("disk full"), 500, "internal", "disk full"},
	}
	for _, tt := range tests {
		e := controlEnv(t)
		e.control.err = tt.err
		r := e.post("/v1/containers/web/instances/a/start", "")
		var env struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(r.body), &env); err != nil {
			t.Fatalf("%q: %v", r.body, err)
		}
		if r.status != tt.wantStatus || env.Error.Code != tt.wantCode || env.Error.Message != tt.wantMsg {
			t.Errorf("%v: %d %q, want %d %s %q", tt.err, r.status, r.body, tt.wantStatus, tt.wantCode, tt.wantMsg)
		}
	}
}

func TestUnknownRoutesAreJSON404(t *testing.T) {
	e := controlEnv(t)
	for _, target := range []string{"/v1/nothing", "/v1/containers/web/instances/a/fetchers", "/v1/containers/web/bogus/fetch/", "/"} {
		r := e.get(target)
		if m := decodeJSON(t, r.body); r.status != 404 || m["error"].(map[string]any)["code"] != "not_found" {
			t.Errorf("%s: %d %q", target, r.status, r.body)
		}
	}
	if r := e.get("/v1/containers/web/instances/a/start"); r.status != 405 || !strings.Contains(r.body, `"error"`) {
		t.Errorf("GET on start: %d %q", r.status, r.body)
	}
	if r := e.get("/healthz"); r.status != 200 || r.body != `{"status":"ok"}`+"\n" {
		t.Errorf("healthz: %d %q", r.status, r.body)
	}
}

// sseReader reads Server-Sent Events blocks ("...\n\n").
type sseReader struct {
	t *testing.T
	r *bufio.Reader
}

func (s sseReader) next() string {
	s.t.Helper()
	type read struct {
		block string
		err   error
	}
	c := make(chan read, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := s.r.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == "\n" {
				c <- read{b.String(), err}
				return
			}
		}
	}()
	select {
	case got := <-c:
		if got.err != nil {
			return "ERR " + got.err.Error()
		}
		return got.block
	case <-time.After(5 * time.Second):
		s.t.Fatal("no SSE block within 5s")
		return ""
	}
}

func openEvents(t *testing.T, e *env, query string) (sseReader, *http.Response) {
	t.Helper()
	res, err := e.client.Do(e.request(http.MethodGet, "/v1/events"+query, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	s := sseReader{t: t, r: bufio.NewReader(res.Body)}
	if got := s.next(); got != ": lunorad events\n\n" {
		t.Fatalf("opening = %q", got)
	}
	return s, res
}

func TestEventsStream(t *testing.T) {
	e := newEnv(t, okBackend)
	s, _ := openEvents(t, e, "")
	<-e.clock.armed // the heartbeat timer: the subscription is live
	ev := events.New("web", "a", events.Start, events.LevelInfo, "", 1700000000000)
	e.bus.Publish(ev)
	want := `data: {"type":"container","source":"lunora","container":"web","instance":"a","event":"start","level":"info","ts":1700000000000}` + "\n\n"
	if got := s.next(); got != want {
		t.Fatalf("event block = %q, want %q", got, want)
	}
	e.clock.Advance(defaultHeartbeat)
	if got := s.next(); got != ": heartbeat\n\n" {
		t.Fatalf("heartbeat = %q", got)
	}
	e.bus.Publish(events.New("web", "a", events.Stop, events.LevelInfo, "hard timeout reached", 1700000000001))
	if got := s.next(); !strings.Contains(got, `"message":"hard timeout reached"`) {
		t.Fatalf("second event = %q", got)
	}
	e.router.Drain()
	if got := s.next(); got != "ERR EOF" {
		t.Fatalf("after Drain = %q, want the stream to end", got)
	}
}

func TestEventsReplay(t *testing.T) {
	e := newEnv(t, okBackend)
	e.bus.Publish(events.New("web", "a", events.Build, events.LevelInfo, "build succeeded in 2s", 1))
	e.bus.Publish(events.New("web", "a", events.Start, events.LevelInfo, "", 2))
	s, _ := openEvents(t, e, "?replay=1")
	for _, want := range []string{`"event":"build"`, `"event":"start"`} {
		if got := s.next(); !strings.HasPrefix(got, "data: {") || !strings.Contains(got, want) {
			t.Fatalf("replayed %q, want %s", got, want)
		}
	}
	plain, _ := openEvents(t, e, "")
	<-e.clock.armed
	<-e.clock.armed
	e.bus.Publish(events.New("web", "a", events.Sleep, events.LevelInfo, "", 3))
	if got := plain.next(); !strings.Contains(got, `"event":"sleep"`) {
		t.Fatalf("without replay the first event is %q, want the new one", got)
	}
}
