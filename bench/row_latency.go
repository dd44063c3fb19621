package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Latency targets: what lunorad may add to a warm request at one client.
const (
	targetAddedP50 = 50 * time.Microsecond
	targetAddedP99 = 500 * time.Microsecond
)

// latencyWarmup requests are sent before each latency run and not recorded.
const latencyWarmup = 200

// latencyRow: added latency of one warm request, one client at a time,
// through lunorad and (as a reference for what a proxy hop costs on this
// machine) through nginx.
type latencyRow struct{}

func (latencyRow) usesNginx()   {}
func (latencyRow) Key() string  { return "latency" }
func (latencyRow) Name() string { return "added latency at 1 client" }
func (latencyRow) Baseline() string {
	return "direct to the container's published port (via docker-proxy)"
}

func (latencyRow) Method(o Options) string {
	return fmt.Sprintf("One client sends %d sequential GET %s on one keep-alive connection (after %d unrecorded), "+
		"direct, through lunorad and through nginx (same config as the throughput row), in %d rounds with a rotated "+
		"order. Added = the proxy's percentile minus direct's in the same round; median [min–max] over rounds. "+
		"Direct and nginx use the published 127.0.0.1 port (docker-proxy); lunorad (by default) dials the "+
		"container on the bridge network it attaches it to, and a reference side measures direct requests to "+
		"that address.",
		o.LatencyRequests, warmPath, latencyWarmup, o.Rounds)
}

// latencySide is one path measured by the latency row.
type latencySide struct {
	name     string
	url      string
	p50, p99 sample // µs
	// added50 and added99 are per-round differences with direct, in µs.
	added50, added99 sample
}

func (latencyRow) Run(ctx context.Context, env *Env) (lines []Line, err error) {
	o := env.Opts
	d, err := startDaemon(ctx, env, "latency")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.stop(context.WithoutCancel(ctx))) }()
	const id = "latency"
	if _, err := d.get(ctx, id, warmPath); err != nil {
		return nil, fmt.Errorf("warming the instance: %w", err)
	}
	addr, netAddr, err := d.instanceAddrs(ctx, id)
	if err != nil {
		return nil, err
	}
	direct := &latencySide{name: "direct", url: "http://" + addr + warmPath}
	lunorad := &latencySide{name: "lunorad", url: d.fetchURL(id, warmPath)}
	sides := []*latencySide{direct, lunorad}
	var peer *latencySide
	if env.Nginx != "" {
		ng, err := startNginx(ctx, env.Nginx, env.WorkDir, addr)
		if err != nil {
			return nil, err
		}
		defer ng.stop()
		peer = &latencySide{name: "nginx", url: ng.Base + warmPath}
		sides = append(sides, peer)
	}
	var netDirect *latencySide
	if netAddr != "" {
		netDirect = &latencySide{name: "direct (network)", url: "http://" + netAddr + warmPath}
		sides = append(sides, netDirect)
	}

	for round := range o.Rounds {
		p := map[*latencySide][2]time.Duration{}
		for _, s := range alternate(sides, round) {
			lat, err := latencies(ctx, s.url, latencyWarmup, o.LatencyRequests)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
			p[s] = [2]time.Duration{percentile(lat, 50), percentile(lat, 99)}
			s.p50, s.p99 = append(s.p50, micros(p[s][0])), append(s.p99, micros(p[s][1]))
		}
		for _, s := range sides[1:] {
			s.added50 = append(s.added50, micros(p[s][0]-p[direct][0]))
			s.added99 = append(s.added99, micros(p[s][1]-p[direct][1]))
		}
		env.logf("latency round %d/%d: direct p50 %s p99 %s, lunorad p50 %s p99 %s", round+1, o.Rounds,
			p[direct][0], p[direct][1], p[lunorad][0], p[lunorad][1])
	}

	type pct struct {
		name   string
		target time.Duration
		base   func(*latencySide) sample
		added  func(*latencySide) sample
	}
	for _, q := range []pct{
		{"p50", targetAddedP50, func(s *latencySide) sample { return s.p50 }, func(s *latencySide) sample { return s.added50 }},
		{"p99", targetAddedP99, func(s *latencySide) sample { return s.p99 }, func(s *latencySide) sample { return s.added99 }},
	} {
		l := Line{
			Figure:   "added latency at 1 client, " + q.name + ", lunorad",
			Baseline: "direct " + q.base(direct).summary(fmtMicros),
			Measured: q.base(lunorad).summary(fmtMicros),
			Result:   q.added(lunorad).summary(fmtSignedMicros) + " added",
			Target:   fmt.Sprintf("≤ %s added", fmtMicros(micros(q.target))),
			Verdict:  Met,
		}
		if m := q.added(lunorad).median(); m > micros(q.target) {
			l.Verdict = Missed
			l.Why = fmt.Sprintf("median added %s > %s", fmtMicros(m), fmtMicros(micros(q.target)))
			if peer != nil {
				l.Why += fmt.Sprintf("; nginx adds %s here", fmtSignedMicros(q.added(peer).median()))
			}
		}
		lines = append(lines, l)
		if peer != nil {
			lines = append(lines, Line{
				Figure:   "added latency at 1 client, " + q.name + ", nginx (peer)",
				Baseline: "direct " + q.base(direct).summary(fmtMicros),
				Measured: q.base(peer).summary(fmtMicros),
				Result:   q.added(peer).summary(fmtSignedMicros) + " added",
				Target:   "reported, as the peer",
				Verdict:  Reported,
			})
		}
		nl := Line{
			Figure:   "added latency at 1 client, " + q.name + ", direct to the container's network address (no docker-proxy; reference)",
			Baseline: "direct " + q.base(direct).summary(fmtMicros),
			Target:   "reported: what the baseline's docker-proxy hop costs",
			Verdict:  Reported,
		}
		if netDirect != nil {
			nl.Measured = q.base(netDirect).summary(fmtMicros)
			nl.Result = q.added(netDirect).summary(fmtSignedMicros) + " added"
		} else {
			nl.Measured, nl.Result, nl.Why = "not measured", "—", noNetworkAddr
		}
		lines = append(lines, nl)
	}
	return lines, nil
}
