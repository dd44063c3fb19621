package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// warmPath is what every warm request asks the testserver: a short fixed
// body, so the figures measure the proxy rather than the app.
const warmPath = "/greet"

// targetWarmRatio is the least share of direct throughput lunorad must keep.
const targetWarmRatio = 0.6

// warmRow: requests per second of a warm instance through lunorad, through
// nginx (the peer) and through Go's bare ReverseProxy (the floor lunorad is
// built on), each against direct requests to the container's published port.
// That baseline includes docker-proxy's hop, which lunorad skips by dialing
// the container on its own network; a reference side measures that address
// too, so the report shows what the baseline contains.
type warmRow struct{}

func (warmRow) usesNginx()  {}
func (warmRow) Key() string { return "warm" }
func (warmRow) Name() string {
	return "warm proxy throughput"
}
func (warmRow) Baseline() string {
	return "direct to the container's published port (via docker-proxy)"
}

func (warmRow) Method(o Options) string {
	return fmt.Sprintf("%d keep-alive clients (Go, in the harness) send GET %s for %s after %s of warm-up, "+
		"in %d rounds; each round runs direct, lunorad, nginx (proxy_pass, upstream keepalive 64, "+
		"worker_processes %d) and bench/refproxy (httputil.ReverseProxy alone, GOMAXPROCS=2) in a rotated order. "+
		"The ratio is taken per round, then its median [min–max]. Each proxy's own CPU time (utime+stime of its "+
		"processes over the measured window) divided by the requests served gives its CPU per request. "+
		"Direct, nginx and refproxy use the container's published 127.0.0.1 port, served by docker-proxy, as a "+
		"user would configure them. lunorad (by default) attaches each ready container to a bridge network it "+
		"creates and dials its address there, skipping docker-proxy; so that this is visible, two reference "+
		"sides use that address too: direct requests, and a second nginx.",
		o.Clients, warmPath, o.Duration, o.Warmup, o.Rounds, nginxWorkers)
}

// warmSide is one path the warm row loads.
type warmSide struct {
	name string
	url  string
	cpu  func() (time.Duration, error) // the proxy's CPU so far; nil for direct
	rps  sample
	// ratio is rps over direct's in the same round.
	ratio sample
	// cpuPerReq is the proxy's own CPU per request, in µs: unlike requests
	// per second, it hardly moves with the machine's other load.
	cpuPerReq sample
}

func (r warmRow) Run(ctx context.Context, env *Env) (lines []Line, err error) {
	o := env.Opts
	d, err := startDaemon(ctx, env, "warm")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.stop(context.WithoutCancel(ctx))) }()
	const id = "warm"
	if _, err := d.get(ctx, id, warmPath); err != nil {
		return nil, fmt.Errorf("warming the instance: %w", err)
	}
	addr, netAddr, err := d.instanceAddrs(ctx, id)
	if err != nil {
		return nil, err
	}
	cpuOf := func(pid int) func() (time.Duration, error) {
		return func() (time.Duration, error) { return procTreeCPU(pid, env.Hz) }
	}

	direct := &warmSide{name: "direct", url: "http://" + addr + warmPath}
	lunorad := &warmSide{name: "lunorad", url: d.fetchURL(id, warmPath), cpu: cpuOf(d.Pid())}
	ref, err := startRefProxy(ctx, env.RefProxy, addr)
	if err != nil {
		return nil, err
	}
	defer ref.stop()
	goFloor := &warmSide{name: "Go ReverseProxy", url: ref.Base + warmPath, cpu: cpuOf(ref.Pid())}
	sides := []*warmSide{direct, lunorad, goFloor}
	var netDirect *warmSide
	if netAddr != "" {
		netDirect = &warmSide{name: "direct (network)", url: "http://" + netAddr + warmPath}
		sides = append(sides, netDirect)
	}
	var peer *warmSide
	if env.Nginx != "" {
		ng, err := startNginx(ctx, env.Nginx, env.WorkDir, addr)
		if err != nil {
			return nil, err
		}
		defer ng.stop()
		peer = &warmSide{name: "nginx", url: ng.Base + warmPath, cpu: cpuOf(ng.Pid())}
		sides = append(sides, peer)
	}
	// nginx dialing the address lunorad dials: the like-for-like comparison
	// of the two proxies, next to the target's (both on published ports
	// for nginx, as a user would configure it).
	var peerNet *warmSide
	if env.Nginx != "" && netAddr != "" {
		ng, err := startNginx(ctx, env.Nginx, filepath.Join(env.WorkDir, "nginx-network"), netAddr)
		if err != nil {
			return nil, err
		}
		defer ng.stop()
		peerNet = &warmSide{name: "nginx (network)", url: ng.Base + warmPath}
		sides = append(sides, peerNet)
	}

	for round := range o.Rounds {
		got := map[*warmSide]float64{}
		for _, s := range alternate(sides, round) {
			res, err := throughput(ctx, s.url, o.Clients, o.Warmup, o.Duration, s.cpu)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
			s.rps = append(s.rps, res.rps)
			if s.cpu != nil {
				s.cpuPerReq = append(s.cpuPerReq, micros(res.cpuPerReq))
			}
			got[s] = res.rps
		}
		var parts []string
		for _, s := range sides {
			if s != direct {
				s.ratio = append(s.ratio, got[s]/got[direct])
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", s.name, got[s]))
		}
		env.logf("warm round %d/%d (req/s): %s", round+1, o.Rounds, strings.Join(parts, ", "))
	}

	if o.ProfileDir != "" {
		// An extra run under the profiler, so the measured rounds are not perturbed.
		path := filepath.Join(o.ProfileDir, "warm.cpu.pprof")
		secs := max(int(o.Duration.Seconds()), 1)
		errc := make(chan error, 1)
		go func() { errc <- d.profile(ctx, secs, path) }()
		_, loadErr := throughput(ctx, lunorad.url, o.Clients, o.Warmup, o.Warmup+o.Duration, nil)
		if err := errors.Join(<-errc, loadErr); err != nil {
			return nil, fmt.Errorf("profiling the warm path: %w", err)
		}
		env.logf("warm-path CPU profile: %s", path)
	}

	baseline := "direct " + direct.rps.summary(fmtRate)
	lr := Line{
		Figure:   fmt.Sprintf("warm proxy throughput, lunorad, %d keep-alive clients", o.Clients),
		Baseline: baseline,
		Measured: lunorad.rps.summary(fmtRate),
		Result:   lunorad.ratio.summary(fmtRatio),
		Target:   fmt.Sprintf("≥ %.2f× and ≥ nginx's ratio", targetWarmRatio),
		Verdict:  Met,
	}
	var why []string
	if m := lunorad.ratio.median(); m < targetWarmRatio {
		why = append(why, fmt.Sprintf("median ratio %.2f < %.2f", m, targetWarmRatio))
	}
	if peer != nil && lunorad.ratio.median() < peer.ratio.median() {
		why = append(why, fmt.Sprintf("median ratio %.2f < nginx's %.2f", lunorad.ratio.median(), peer.ratio.median()))
	}
	if len(why) > 0 {
		lr.Verdict = Missed
	}
	if peer == nil {
		why = append(why, "nginx not measured: "+env.NginxWhy)
	}
	lr.Why = strings.Join(why, "; ")
	lines = append(lines, lr)

	ln := Line{
		Figure:  fmt.Sprintf("warm proxy throughput, nginx (peer), %d keep-alive clients", o.Clients),
		Target:  "reported, as the peer",
		Verdict: Reported,
	}
	if peer != nil {
		ln.Baseline, ln.Measured, ln.Result = baseline, peer.rps.summary(fmtRate), peer.ratio.summary(fmtRatio)
	} else {
		ln.Baseline, ln.Measured, ln.Result, ln.Why = "—", "not measured", "—", env.NginxWhy
	}
	lines = append(lines, ln, Line{
		Figure:   fmt.Sprintf("warm proxy throughput, Go httputil.ReverseProxy alone (reference), %d clients", o.Clients),
		Baseline: baseline,
		Measured: goFloor.rps.summary(fmtRate),
		Result:   goFloor.ratio.summary(fmtRatio),
		Target:   "reported: the floor lunorad's router is built on",
		Verdict:  Reported,
	})

	nl := Line{
		Figure:   fmt.Sprintf("warm throughput, direct to the container's network address (no docker-proxy; reference), %d clients", o.Clients),
		Baseline: baseline,
		Target:   "reported: what the baseline's docker-proxy hop costs",
		Verdict:  Reported,
	}
	if netDirect != nil {
		nl.Measured, nl.Result = netDirect.rps.summary(fmtRate), netDirect.ratio.summary(fmtRatio)
	} else {
		nl.Measured, nl.Result, nl.Why = "not measured", "—", noNetworkAddr
	}
	lines = append(lines, nl)
	if peerNet != nil {
		lines = append(lines, Line{
			Figure:   fmt.Sprintf("warm throughput, nginx to the container's network address (reference), %d clients", o.Clients),
			Baseline: baseline,
			Measured: peerNet.rps.summary(fmtRate),
			Result:   peerNet.ratio.summary(fmtRatio),
			Target:   "reported: nginx on the same path lunorad takes",
			Verdict:  Reported,
		})
	}

	cpu := Line{
		Figure:   "proxy CPU per warm request (same runs)",
		Baseline: "Go ReverseProxy alone " + goFloor.cpuPerReq.summary(fmtMicros),
		Measured: "lunorad " + lunorad.cpuPerReq.summary(fmtMicros),
		Result:   fmtRatio(lunorad.cpuPerReq.median()/goFloor.cpuPerReq.median()) + " of Go's floor",
		Target:   "reported (explains the lines above)",
		Verdict:  Reported,
	}
	if peer != nil {
		cpu.Baseline += "; nginx " + peer.cpuPerReq.summary(fmtMicros)
		cpu.Result += "; " + fmtRatio(lunorad.cpuPerReq.median()/peer.cpuPerReq.median()) + " of nginx's"
	}
	return append(lines, cpu), nil
}
