package router

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// maxControlBody bounds a control-plane JSON body; start options are small.
const maxControlBody = 1 << 20

// controlHandler answers one control-plane request with a value to encode
// as JSON (status 200) or an error mapped by controlError.
type controlHandler func(r *http.Request) (any, error)

// api adapts a controlHandler: JSON out, errors mapped in one place, logged
// once here when they are the daemon's fault.
func (rt *Router) api(h controlHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		if err != nil {
			if r.Context().Err() != nil {
				rt.metrics.request(kindControl, 499)
				return // the client is gone; nobody reads an answer
			}
			e := controlError(err)
			if e.status >= 500 {
				rt.log.Warn("control request failed", zap.String("method", r.Method),
					zap.String("path", r.URL.EscapedPath()), zap.Int("status", e.status), zap.Error(err))
			}
			rt.metrics.request(kindControl, e.status)
			writeAPIError(w, e)
			return
		}
		rt.metrics.request(kindControl, http.StatusOK)
		writeJSON(w, http.StatusOK, v)
	}
}

// containerView is the public description of a container's configuration:
// everything but secret values (secrets and secretsStore are listed by name;
// env values are shown, as wrangler shows vars).
type containerView struct {
	Name           string            `json:"name"`
	Image          imageView         `json:"image"`
	DefaultPort    int               `json:"defaultPort,omitempty"`
	RequiredPorts  []int             `json:"requiredPorts"`
	InstanceType   instanceTypeView  `json:"instanceType"`
	MaxInstances   int               `json:"maxInstances,omitempty"`
	SleepAfter     string            `json:"sleepAfter"`
	HardTimeout    string            `json:"hardTimeout,omitempty"`
	Env            map[string]string `json:"env"`
	Secrets        []string          `json:"secrets"`
	SecretsStore   []string          `json:"secretsStore"`
	Labels         map[string]string `json:"labels"`
	Entrypoint     []string          `json:"entrypoint,omitempty"`
	EnableInternet bool              `json:"enableInternet"`
	AllowedHosts   []string          `json:"allowedHosts"`
	DeniedHosts    []string          `json:"deniedHosts"`
	InterceptHTTPS bool              `json:"interceptHttps"`
	ReadyOn        []readyCheckView  `json:"readyOn"`
	Instances      int               `json:"instances"`
}

type imageView struct {
	Kind   config.ImageKind `json:"kind"`
	Source string           `json:"source"`
}

type instanceTypeView struct {
	Name      string  `json:"name,omitempty"`
	VCPU      float64 `json:"vcpu"`
	MemoryMiB int     `json:"memoryMib"`
	DiskMB    int     `json:"diskMb"`
}

type readyCheckView struct {
	Path   string `json:"path"`
	Port   int    `json:"port"`
	Status int    `json:"status"`
}

func (rt *Router) viewContainer(c *config.Container) (containerView, error) {
	infos, err := rt.control.Instances(c.Name)
	if err != nil {
		return containerView{}, err
	}
	v := containerView{
		Name:           c.Name,
		Image:          imageView{Kind: c.Image.Kind, Source: c.Image.Source},
		DefaultPort:    c.DefaultPort,
		RequiredPorts:  nonNil(c.RequiredPorts),
		InstanceType:   instanceTypeView{Name: c.InstanceType.Name, VCPU: c.InstanceType.VCPU, MemoryMiB: c.InstanceType.MemoryMiB, DiskMB: c.InstanceType.DiskMB},
		MaxInstances:   c.MaxInstances,
		SleepAfter:     formatDuration(c.SleepAfter),
		Env:            nonNilMap(c.Env),
		Secrets:        nonNil(c.Secrets),
		SecretsStore:   sortedKeys(c.SecretsStore),
		Labels:         nonNilMap(c.Labels),
		Entrypoint:     c.Entrypoint,
		EnableInternet: c.EnableInternet,
		AllowedHosts:   nonNil(c.AllowedHosts),
		DeniedHosts:    nonNil(c.DeniedHosts),
		InterceptHTTPS: c.InterceptHTTPS,
		ReadyOn:        make([]readyCheckView, 0, len(c.ReadyOn)),
		Instances:      len(infos),
	}
	if c.HardTimeout > 0 {
		v.HardTimeout = formatDuration(c.HardTimeout)
	}
	for _, rc := range c.ReadyOn {
		v.ReadyOn = append(v.ReadyOn, readyCheckView(rc))
	}
	return v, nil
}

// GET /v1/containers
func (rt *Router) listContainers(*http.Request) (any, error) {
	names := rt.control.ContainerNames()
	list := make([]containerView, 0, len(names))
	for _, name := range names {
		c, ok := rt.control.Container(name)
		if !ok {
			continue // removed by a reload between the two calls
		}
		v, err := rt.viewContainer(c)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return map[string]any{"containers": list}, nil
}

// GET /v1/containers/{name}
func (rt *Router) getContainer(r *http.Request) (any, error) {
	c, err := rt.containerParam(r)
	if err != nil {
		return nil, err
	}
	return rt.viewContainer(c)
}

// GET /v1/containers/{name}/instances
func (rt *Router) listInstances(r *http.Request) (any, error) {
	c, err := rt.containerParam(r)
	if err != nil {
		return nil, err
	}
	infos, err := rt.control.Instances(c.Name)
	if err != nil {
		return nil, err
	}
	if infos == nil {
		infos = []lifecycle.InstanceInfo{}
	}
	return map[string]any{"instances": infos}, nil
}

// GET /v1/containers/{name}/instances/{id}
func (rt *Router) getInstance(r *http.Request) (any, error) {
	c, id, err := rt.instanceParams(r)
	if err != nil {
		return nil, err
	}
	return rt.control.Instance(c.Name, id)
}

// GET /v1/containers/{name}/instances/{id}/state
func (rt *Router) getState(r *http.Request) (any, error) {
	c, id, err := rt.instanceParams(r)
	if err != nil {
		return nil, err
	}
	return rt.control.State(c.Name, id)
}

// startBody is the JSON body of POST .../start (Lunora's start(opts)).
type startBody struct {
	EnvVars        map[string]string `json:"envVars"`
	Entrypoint     []string          `json:"entrypoint"`
	EnableInternet *bool             `json:"enableInternet"`
	Labels         map[string]string `json:"labels"`
}

// POST /v1/containers/{name}/instances/{id}/start[?wait=healthy]
func (rt *Router) startInstance(r *http.Request) (any, error) {
	c, id, err := rt.instanceParams(r)
	if err != nil {
		return nil, err
	}
	var body startBody
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	opts := lifecycle.StartOptions{
		EnvVars: body.EnvVars, Entrypoint: body.Entrypoint,
		EnableInternet: body.EnableInternet, Labels: body.Labels,
	}
	switch wait := r.URL.Query().Get("wait"); wait {
	case "":
	case "healthy":
		opts.WaitHealthy = true
	default:
		return nil, apiBadRequest("wait=%q is not supported; use wait=healthy or omit it", wait)
	}
	if err := rt.control.Start(r.Context(), c.Name, id, opts); err != nil {
		return nil, err
	}
	return rt.control.State(c.Name, id)
}

// stopBody is the JSON body of POST .../stop; signal is a name ("SIGTERM",
// "TERM") or a number (15 or "15").
type stopBody struct {
	Signal json.RawMessage `json:"signal"`
}

// POST /v1/containers/{name}/instances/{id}/stop
func (rt *Router) stopInstance(r *http.Request) (any, error) {
	c, id, err := rt.instanceParams(r)
	if err != nil {
		return nil, err
	}
	var body stopBody
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	sig, err := parseSignal(body.Signal)
	if err != nil {
		return nil, err
	}
	if err := rt.control.Stop(r.Context(), c.Name, id, sig); err != nil {
		return nil, err
	}
	return rt.control.State(c.Name, id)
}

// POST /v1/containers/{name}/instances/{id}/destroy
func (rt *Router) destroyInstance(r *http.Request) (any, error) {
	c, id, err := rt.instanceParams(r)
	if err != nil {
		return nil, err
	}
	if err := rt.control.Destroy(r.Context(), c.Name, id); err != nil {
		return nil, err
	}
	return rt.control.State(c.Name, id)
}

// POST /v1/containers/{name}/instances/{id}/renew-activity-timeout
func (rt *Router) renewActivity(r *http.Request) (any, error) {
	c, id, err := rt.instanceParams(r)
	if err != nil {
		return nil, err
	}
	if err := rt.control.RenewActivity(c.Name, id); err != nil {
		return nil, err
	}
	return rt.control.State(c.Name, id)
}

// containerParam decodes {name} (raw segment 3 of /v1/containers/{name}) and
// looks it up.
func (rt *Router) containerParam(r *http.Request) (*config.Container, error) {
	raw := rawSegment(rawRequestPath(r), 3)
	name, err := url.PathUnescape(raw)
	if err != nil {
		return nil, apiBadRequest("invalid container name %q: malformed percent-encoding", raw)
	}
	c, ok := rt.control.Container(name)
	if !ok {
		return nil, &lifecycle.UnknownContainerError{Name: name}
	}
	return c, nil
}

// instanceParams decodes {name} and {id} (raw segment 5) with the data
// plane's id rules.
func (rt *Router) instanceParams(r *http.Request) (*config.Container, string, error) {
	c, err := rt.containerParam(r)
	if err != nil {
		return nil, "", err
	}
	id, err := decodeID(rawSegment(rawRequestPath(r), 5))
	if err != nil {
		return nil, "", apiBadRequest("%s", err.Error())
	}
	return c, id, nil
}

// decodeBody decodes an optional JSON object body strictly: unknown fields
// and trailing data are 400s; an empty body leaves v as is.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
	if err != nil {
		return fmt.Errorf("reading the request body: %w", err)
	}
	if len(data) > maxControlBody {
		return apiBadRequest("request body is larger than %d bytes", maxControlBody)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiBadRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return apiBadRequest("invalid JSON body: unexpected data after the object")
	}
	return nil
}

// signalNumbers maps the signals a container stop may send to their names.
var signalNumbers = map[int]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL",
	10: "SIGUSR1", 12: "SIGUSR2", 14: "SIGALRM", 15: "SIGTERM", 28: "SIGWINCH",
}

// parseSignal normalises the stop body's signal to a name such as
// "SIGTERM"; absent or null means SIGTERM (upstream's default).
func parseSignal(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "SIGTERM", nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		s = strings.ToUpper(strings.TrimSpace(str))
	}
	if n, err := strconv.Atoi(s); err == nil {
		if name, ok := signalNumbers[n]; ok {
			return name, nil
		}
		return "", apiBadRequest("unsupported signal %d", n)
	}
	name := s
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for _, known := range signalNumbers {
		if known == name {
			return name, nil
		}
	}
	return "", apiBadRequest("unsupported signal %s; use a name such as \"SIGTERM\" or a number such as 15", string(raw))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(errorEnvelope(codeInternal, "encoding the response: "+err.Error()))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorEnvelope(e.code, e.message))
}

func errorEnvelope(code, message string) map[string]map[string]string {
	return map[string]map[string]string{"error": {"code": code, "message": message}}
}

// formatDuration spells d in the config grammar (^\d+[smh]$) with the
// largest exact unit: 10m, 90s, 1h.
func formatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0 && d >= time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0 && d >= time.Minute:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	default:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
