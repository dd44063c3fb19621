package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Row is one figure of BENCHMARKS.md: what it measures, against which
// baseline of the same run, and how. New figures (hot reload, egress proxy)
// are new Rows added to allRows; the harness, the report and the smoke test
// pick them up unchanged.
type Row interface {
	// Key is the row's short name for -rows (e.g. "warm").
	Key() string
	// Name is the figure as the table shows it.
	Name() string
	// Baseline says what the figure is compared with, measured in the same run.
	Baseline() string
	// Method says exactly how the row measures with these options.
	Method(o Options) string
	// Run measures the figure. It returns one table line per reported
	// number; an error means the row could not be measured at all.
	Run(ctx context.Context, env *Env) ([]Line, error)
}

// nginxPeer is implemented by rows that also measure nginx as a reference;
// the harness finds (or installs) nginx only when one of them runs.
type nginxPeer interface{ usesNginx() }

// allRows are the figures in the order BENCHMARKS.md lists them.
func allRows() []Row {
	return []Row{warmRow{}, latencyRow{}, coldRow{}, herdRow{}, scaleRow{}}
}

// Verdict is how a line compares with its target.
type Verdict string

const (
	Met      Verdict = "met"
	Missed   Verdict = "**missed**"
	Reported Verdict = "reported"
	Failed   Verdict = "**error**"
)

// Line is one line of the results table.
type Line struct {
	Figure   string
	Baseline string // the baseline's value, "median [min–max]", or "—"
	Measured string // lunorad's (or the peer's) value
	Result   string // ratio or difference against the baseline
	Target   string
	Verdict  Verdict
	// Why explains a missed target or an unusual reading (optional).
	Why string
}

// Options size a run. The full run uses defaultOptions; -smoke uses
// smokeOptions, a very short run of every row.
type Options struct {
	Rounds          int           // A/B rounds per row
	Duration        time.Duration // one throughput run, after Warmup
	Warmup          time.Duration // discarded load before each throughput run
	Clients         int           // concurrent keep-alive clients for throughput
	LatencyRequests int           // sequential requests per latency run
	ColdRounds      int           // cold starts per side
	HerdSize        int           // concurrent first requests to one new id
	ScaleInstances  int           // instances for the scale row
	ScaleParallel   int           // first requests in flight while scaling up
	IdleWindow      time.Duration // idle CPU sampling window for the scale row
	// ProfileDir, when set, receives CPU profiles of the daemon's warm and
	// cold paths, taken in extra runs after the measured rounds.
	ProfileDir string
	Smoke      bool
}

func defaultOptions() Options {
	return Options{
		Rounds: 5, Duration: 3 * time.Second, Warmup: time.Second, Clients: 32,
		LatencyRequests: 5000, ColdRounds: 10, HerdSize: 200,
		ScaleInstances: 100, ScaleParallel: 8, IdleWindow: 10 * time.Second,
	}
}

// smokeOptions run every row for a moment: they prove the harness works,
// not how fast lunorad is. The herd keeps its full size: it is a correctness
// figure and takes well under a second.
func smokeOptions() Options {
	return Options{
		Rounds: 1, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Clients: 32,
		LatencyRequests: 200, ColdRounds: 1, HerdSize: 200,
		ScaleInstances: 5, ScaleParallel: 5, IdleWindow: time.Second, Smoke: true,
	}
}

// Env is what every row shares: the built binaries, the image context and
// the optional nginx peer.
type Env struct {
	Opts Options
	// Lunorad is the path of the daemon binary under test.
	Lunorad string
	// RefProxy is bench/refproxy, built for this run.
	RefProxy string
	// ImageDir is the testserver build context (a FROM scratch image).
	ImageDir string
	// WorkDir holds configs and logs of this run; removed at the end.
	WorkDir string
	// Nginx is the nginx binary, or "" with NginxWhy saying why not.
	Nginx    string
	NginxWhy string
	// Progress receives one line per step (stderr).
	Progress io.Writer
	// Hz is USER_HZ, the unit of /proc CPU times.
	Hz int64
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.Progress, "bench: "+format+"\n", args...)
}

// alternate returns the order of sides for round r: every round rotates the
// list, so no side always runs first (or last) on a noisy machine.
func alternate[T any](sides []T, r int) []T {
	n := len(sides)
	out := make([]T, n)
	for i := range sides {
		out[i] = sides[(i+r)%n]
	}
	return out
}
