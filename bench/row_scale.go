package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Scale targets for the daemon process itself (containers not included).
const (
	targetRSSMiB     = 60
	targetIdleCPUPct = 1.0
)

// settleTime passes after the last instance is healthy and before idle
// sampling starts, so start-up work (GC of the start garbage) is not counted.
const settleTime = 2 * time.Second

// scaleRow: the daemon's own footprint with many instances running.
type scaleRow struct{}

func (scaleRow) Key() string      { return "scale" }
func (scaleRow) Name() string     { return "scale" }
func (scaleRow) Baseline() string { return "—" }

func (scaleRow) Method(o Options) string {
	return fmt.Sprintf("A fresh daemon (config without maxInstances) gets first requests for %d new ids, %d in flight "+
		"at a time, each of which must answer 200; the engine must then list %d running containers. After %s, the "+
		"daemon's CPU (the run time of its threads, in ns, from /proc/<pid>/task/*/schedstat; the clock ticks of "+
		"/proc/<pid>/stat beside it) is sampled over %s with no traffic, and its RSS (VmRSS "+
		"from /proc/<pid>/status) read every second of that window; the largest reading is reported. The daemon's "+
		"RSS before any instance is shown for reference.",
		o.ScaleInstances, o.ScaleParallel, o.ScaleInstances, settleTime, o.IdleWindow)
}

func (scaleRow) Run(ctx context.Context, env *Env) (lines []Line, err error) {
	o := env.Opts
	d, err := startDaemon(ctx, env, "scale")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.stop(context.WithoutCancel(ctx))) }()
	pid := d.Pid()
	emptyRSS, err := procRSS(pid)
	if err != nil {
		return nil, err
	}

	t0 := time.Now()
	if err := startMany(ctx, d, o.ScaleInstances, o.ScaleParallel); err != nil {
		return nil, err
	}
	upIn := time.Since(t0)
	owned, err := d.owned(ctx)
	if err != nil {
		return nil, err
	}
	if len(owned) != o.ScaleInstances {
		return nil, fmt.Errorf("the engine lists %d containers of the daemon, want %d", len(owned), o.ScaleInstances)
	}
	env.logf("scale: %d instances healthy in %s; idle sampling for %s", o.ScaleInstances, upIn.Round(time.Millisecond), o.IdleWindow)

	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settleTime):
	}
	ticks0, err := procCPUTicks(pid)
	if err != nil {
		return nil, err
	}
	run0, err := procRunTime(pid)
	if err != nil {
		return nil, err
	}
	w0 := time.Now()
	var maxRSS int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(w0) < o.IdleWindow {
		rss, err := procRSS(pid)
		if err != nil {
			return nil, err
		}
		maxRSS = max(maxRSS, rss)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	ticks1, err := procCPUTicks(pid)
	if err != nil {
		return nil, err
	}
	run1, err := procRunTime(pid)
	if err != nil {
		return nil, err
	}
	window := time.Since(w0)
	rss, err := procRSS(pid)
	if err != nil {
		return nil, err
	}
	maxRSS = max(maxRSS, rss)
	cpuPct := (run1 - run0).Seconds() / window.Seconds() * 100
	if o.ProfileDir != "" {
		// A second idle window under the profiler: what the idle CPU is spent on.
		path := filepath.Join(o.ProfileDir, "idle.cpu.pprof")
		if err := d.profile(ctx, max(int(o.IdleWindow.Seconds()), 1), path); err != nil {
			return nil, fmt.Errorf("profiling the idle daemon: %w", err)
		}
		env.logf("idle CPU profile: %s", path)
	}
	rssMiB := float64(maxRSS) / (1 << 20)
	env.logf("scale: RSS %.1f MiB (empty daemon %.1f MiB), idle CPU %.2f %%", rssMiB, float64(emptyRSS)/(1<<20), cpuPct)

	rssLine := Line{
		Figure:   fmt.Sprintf("scale: %d instances running, daemon RSS", o.ScaleInstances),
		Baseline: "—",
		Measured: fmtMiB(rssMiB),
		Result:   fmt.Sprintf("%s with no instance; %d up in %s", fmtMiB(float64(emptyRSS)/(1<<20)), o.ScaleInstances, fmtSeconds(upIn.Seconds())),
		Target:   fmt.Sprintf("≤ %d MiB", targetRSSMiB),
		Verdict:  Met,
	}
	if rssMiB > targetRSSMiB {
		rssLine.Verdict, rssLine.Why = Missed, fmt.Sprintf("%s > %d MiB", fmtMiB(rssMiB), targetRSSMiB)
	}
	cpuLine := Line{
		Figure:   fmt.Sprintf("scale: %d instances running, daemon CPU when idle", o.ScaleInstances),
		Baseline: "—",
		Measured: fmtPercent(cpuPct) + " of one core",
		Result: fmt.Sprintf("%.1f ms on CPU over %s (%d clock ticks)", float64(run1-run0)/float64(time.Millisecond),
			fmtSeconds(window.Seconds()), ticks1-ticks0),
		Target:  fmt.Sprintf("≤ %.0f %%", targetIdleCPUPct),
		Verdict: Met,
	}
	if cpuPct > targetIdleCPUPct {
		cpuLine.Verdict, cpuLine.Why = Missed, fmt.Sprintf("%s > %.0f %%", fmtPercent(cpuPct), targetIdleCPUPct)
	}
	return []Line{rssLine, cpuLine}, nil
}

// startMany sends first requests to ids scale-0..n-1, parallel at a time,
// and fails on the first one that does not answer 200.
func startMany(ctx context.Context, d *daemon, n, parallel int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ids := make(chan string)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if _, err := d.get(ctx, id, warmPath); err != nil {
					cancel(fmt.Errorf("starting %s: %w", id, err))
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case ids <- fmt.Sprintf("scale-%d", i):
		case <-ctx.Done():
			break feed
		}
	}
	close(ids)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
