package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/supervisor"
)

// Timeouts of the harness's own calls to the daemon and the engine.
const (
	daemonStartTimeout = 30 * time.Second
	daemonStopTimeout  = 120 * time.Second // 100 containers stop in parallel, each with a grace
	controlTimeout     = 30 * time.Second
	engineTimeout      = 30 * time.Second
	// firstRequestTimeout bounds a request that may cold-start an instance.
	firstRequestTimeout = 90 * time.Second
)

// benchContainer is the container name every row's config declares.
const benchContainer = "web"

// daemon is one real lunorad process (`lunorad up`), started as a separate
// process so its RSS and CPU can be read from /proc.
type daemon struct {
	Base      string // http://127.0.0.1:NNNNN
	PprofAddr string // 127.0.0.1:NNNNN
	cmd       *exec.Cmd
	cfg       *config.Config
	logPath   string
	exited    chan struct{} // closed when the process has been waited for
	waitErr   error
	client    *http.Client
}

// daemonYAML is the config of every row: one container on the testserver
// image, with no maxInstances and timers long enough never to fire during a
// run.
func daemonYAML(imageDir string) string {
	return fmt.Sprintf(`containers:
  %s:
    image: %s
    defaultPort: 8080
    sleepAfter: 1h
`, benchContainer, imageDir)
}

// writeBenchConfig writes the bench's container definition into its own
// folder under the work dir (hence its own config id and ownership labels)
// and loads it as lunorad will.
func writeBenchConfig(env *Env, name string) (*config.Config, string, error) {
	dir := filepath.Join(env.WorkDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "lunorad.yaml")
	if err := os.WriteFile(path, []byte(daemonYAML(env.ImageDir)), 0o644); err != nil {
		return nil, "", err
	}
	cfg, _, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("bench config: %w", err)
	}
	return cfg, path, nil
}

// startDaemon writes the config into its own folder (hence its own config
// id and ownership labels) and runs `lunorad up` on a free loopback port
// with GOMAXPROCS=2, then waits for /healthz.
func startDaemon(ctx context.Context, env *Env, name string) (*daemon, error) {
	cfg, path, err := writeBenchConfig(env, name)
	if err != nil {
		return nil, err
	}
	listen, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	pprofAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(filepath.Dir(path), "lunorad.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor

	cmd := exec.Command(env.Lunorad, "up", "-c", path, "--listen", listen, "--no-limits",
		"--log-level", "warn", "--stop-grace", "5s", "--pprof", pprofAddr)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", env.Lunorad, err)
	}
	d := &daemon{
		Base: "http://" + listen, PprofAddr: pprofAddr, cmd: cmd, cfg: cfg, logPath: logPath,
		exited: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}},
	}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	deadline := time.Now().Add(daemonStartTimeout)
	for {
		if err := d.healthy(ctx); err == nil {
			return d, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			stopErr := d.stop(context.WithoutCancel(ctx))
			return nil, errors.Join(fmt.Errorf("lunorad did not serve /healthz within %s: %w%s", daemonStartTimeout, err, d.logTail()), stopErr)
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("lunorad exited at start (%v)%s", d.waitErr, d.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *daemon) Pid() int { return d.cmd.Process.Pid }

// fetchURL is the data-plane URL of path on instance id.
func (d *daemon) fetchURL(id, path string) string {
	return d.Base + "/v1/containers/" + benchContainer + "/instances/" + url.PathEscape(id) + "/fetch" + path
}

func (d *daemon) healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	status, _, err := d.do(ctx, http.MethodGet, d.Base+"/healthz")
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/healthz answered %d", status)
	}
	return nil
}

// do sends one request and returns the status and body.
func (d *daemon) do(ctx context.Context, method, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, err
	}
	res, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// get sends one GET through the data plane (cold-starting id if needed) and
// requires a 200.
func (d *daemon) get(ctx context.Context, id, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, firstRequestTimeout)
	defer cancel()
	status, body, err := d.do(ctx, http.MethodGet, d.fetchURL(id, path))
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %q: %d %s", path, id, status, bytes.TrimSpace(body))
	}
	return body, nil
}

// attachWait bounds the wait for lunorad to attach a ready instance to its
// network (it does so in the background, 120–230 ms after the first request).
const attachWait = 5 * time.Second

// noNetworkAddr says why a reference side on the container's network address
// was not measured.
var noNetworkAddr = fmt.Sprintf("lunorad reported no network address for the instance within %s "+
	"(the attach failed or there is no route to its network; see lunorad.log)", attachWait)

// instanceAddrs reads the addresses of the instance's default port from the
// control API: published is the 127.0.0.1 port served by docker-proxy;
// network is the container's own address on lunorad's bridge network, the one
// lunorad dials once it has attached the container ("" when it has not
// within attachWait).
func (d *daemon) instanceAddrs(ctx context.Context, id string) (published, network string, err error) {
	deadline := time.Now().Add(attachWait)
	for {
		published, network, err = d.instanceAddrsOnce(ctx, id)
		if err != nil || network != "" || time.Now().After(deadline) {
			return published, network, err
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *daemon) instanceAddrsOnce(ctx context.Context, id string) (published, network string, err error) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	status, body, err := d.do(ctx, http.MethodGet, d.Base+"/v1/containers/"+benchContainer+"/instances/"+url.PathEscape(id))
	if err != nil {
		return "", "", err
	}
	if status != http.StatusOK {
		return "", "", fmt.Errorf("instance %q: %d %s", id, status, bytes.TrimSpace(body))
	}
	var info struct {
		State  json.RawMessage   `json:"state"`
		Ports  map[string]string `json:"ports"`
		Direct map[string]string `json:"direct"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return "", "", fmt.Errorf("instance %q: %w", id, err)
	}
	published = info.Ports["8080"]
	if published == "" {
		return "", "", fmt.Errorf("instance %q (state %q) has no published port 8080: %s", id, info.State, body)
	}
	return published, info.Direct["8080"], nil
}

// destroy kills and removes the instance's container (POST .../destroy).
func (d *daemon) destroy(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	status, body, err := d.do(ctx, http.MethodPost, d.Base+"/v1/containers/"+benchContainer+"/instances/"+url.PathEscape(id)+"/destroy")
	if err != nil {
		return fmt.Errorf("destroy %q: %w", id, err)
	}
	if status >= 300 {
		return fmt.Errorf("destroy %q: %d %s", id, status, bytes.TrimSpace(body))
	}
	return nil
}

// profile saves a CPU profile of the daemon over seconds to path.
func (d *daemon) profile(ctx context.Context, seconds int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+controlTimeout)
	defer cancel()
	status, body, err := d.do(ctx, http.MethodGet, "http://"+d.PprofAddr+"/debug/pprof/profile?seconds="+strconv.Itoa(seconds))
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("CPU profile: %d %s", status, bytes.TrimSpace(body))
	}
	return os.WriteFile(path, body, 0o644)
}

// owned asks the engine which containers carry this daemon's labels.
func (d *daemon) owned(ctx context.Context) ([]string, error) {
	return ownedBy(ctx, d.cfg.ID(), nil)
}

// ownedBy lists the ids of containers labelled for configID (those of
// instance only, when set), as the engine sees them.
func ownedBy(ctx context.Context, configID string, instance *string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	eng, err := supervisor.New(ctx, supervisor.Options{ConfigID: configID})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	list, err := eng.ListOwned(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range list {
		if instance == nil || c.Instance == *instance {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

// stop sends SIGTERM (lunorad then stops and removes its containers), waits,
// and checks with the engine that nothing of this config is left. Leftovers
// are removed by id and reported as an error: a clean shutdown is part of
// what the harness checks.
func (d *daemon) stop(ctx context.Context) error {
	var errs []error
	select {
	case <-d.exited:
	default:
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("SIGTERM lunorad: %w", err))
		}
		select {
		case <-d.exited:
		case <-time.After(daemonStopTimeout):
			_ = d.cmd.Process.Kill() // our own child, by pid
			<-d.exited
			errs = append(errs, fmt.Errorf("lunorad did not exit within %s of SIGTERM%s", daemonStopTimeout, d.logTail()))
		}
	}
	if d.waitErr != nil {
		errs = append(errs, fmt.Errorf("lunorad exited with %v%s", d.waitErr, d.logTail()))
	}
	left, err := d.owned(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("listing leftovers: %w", err))
	} else if len(left) > 0 {
		errs = append(errs, fmt.Errorf("%d containers left after lunorad stopped; removed them", len(left)))
		errs = append(errs, removeContainers(ctx, d.cfg.ID(), left))
	}
	if err := removeImages(ctx, d.cfg.ID()); err != nil {
		errs = append(errs, err)
	}
	if c, ok := d.client.Transport.(*http.Transport); ok {
		c.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// removeImages removes the images built for configID, so a bench run leaves
// the engine as it found it.
func removeImages(ctx context.Context, configID string) error {
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	eng, err := supervisor.New(ctx, supervisor.Options{ConfigID: configID})
	if err != nil {
		return err
	}
	defer eng.Close()
	if _, err := eng.RemoveImages(ctx); err != nil {
		return fmt.Errorf("removing the bench's images: %w", err)
	}
	return nil
}

// removeContainers force-removes the given containers of configID.
func removeContainers(ctx context.Context, configID string, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	eng, err := supervisor.New(ctx, supervisor.Options{ConfigID: configID})
	if err != nil {
		return err
	}
	defer eng.Close()
	var errs []error
	for _, id := range ids {
		errs = append(errs, eng.Remove(ctx, id))
	}
	return errors.Join(errs...)
}

// logTail is the end of the daemon's log, for error messages.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\nlunorad log (" + d.logPath + "):\n  " + strings.Join(lines, "\n  ")
}

// freeLoopbackAddr finds a free port on 127.0.0.1. Another process may take
// it before it is used; on a single-user bench machine that is rare enough.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// procRSS reads the resident set size of pid in bytes (VmRSS).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// procRunTime returns the CPU time pid's threads have run so far, in
// nanoseconds, summed over /proc/<pid>/task/*/schedstat (its first field).
// Clock ticks (10 ms) cannot resolve an idle daemon's few milliseconds over
// a window of seconds. A thread that exits drops out of the sum; the Go
// runtime keeps its threads, and the caller shows the ticks beside it.
func procRunTime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited since the listing
		}
		if err != nil {
			return 0, err
		}
		ns, err := parseSchedstat(string(b))
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		total += ns
	}
	return total, nil
}

// parseSchedstat reads the time on CPU (ns) from a schedstat line:
// "<run ns> <wait ns> <timeslices>".
func parseSchedstat(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return 0, fmt.Errorf("malformed schedstat %q: want 3 fields", line)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed schedstat %q: %w", line, err)
	}
	return time.Duration(ns), nil
}

// procCPUTicks reads utime+stime of pid, in clock ticks.
func procCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

// parseStatTicks extracts utime (field 14) + stime (field 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat: too few fields")
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// procTreeCPU returns the CPU time used so far by pid and its direct
// children (nginx's master and workers), from /proc.
func procTreeCPU(pid int, hz int64) (time.Duration, error) {
	ticks, err := procCPUTicks(pid)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue // gone meanwhile
		}
		if ppid, err := parseStatPPID(string(b)); err == nil && ppid == pid {
			if t, err := parseStatTicks(string(b)); err == nil {
				ticks += t
			}
		}
	}
	return time.Duration(ticks) * time.Second / time.Duration(hz), nil
}

// parseStatPPID extracts the parent pid (field 4) of a /proc/<pid>/stat line.
func parseStatPPID(stat string) (int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, errors.New("malformed /proc stat: too few fields")
	}
	return strconv.Atoi(f[1])
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat times.
func clockTicksPerSecond() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100 // USER_HZ on every mainstream Linux build
}
