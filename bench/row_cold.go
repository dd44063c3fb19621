package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lunora/lunorad/internal/lifecycle"
	"github.com/lunora/lunorad/internal/supervisor"
)

// Cold-start target: within 10 % of the raw engine, or at most 25 ms more.
const (
	targetColdRatio = 1.10
	targetColdAdded = 25 * time.Millisecond
)

// rawPollInterval is how often the raw baseline polls for its first 200:
// as tight as a hand-written script would, so the baseline is not padded.
const rawPollInterval = time.Millisecond

// profiledColdStarts are the extra cold starts run under the profiler.
const profiledColdStarts = 8

// coldRow: time from a request for a new id to the first response byte,
// against creating, starting and polling the same image by hand.
type coldRow struct{}

func (coldRow) Key() string  { return "cold" }
func (coldRow) Name() string { return "cold start" }
func (coldRow) Baseline() string {
	return "raw engine create + start + first HTTP 200 of the same image"
}

func (coldRow) Method(o Options) string {
	return fmt.Sprintf("lunorad: GET %s for a new instance id on a fresh connection, timed from sending to the "+
		"first response byte (a 200), then POST .../destroy. Raw: internal/supervisor Run (create + start + "+
		"port read-back) of the image lunorad built, then GET %s every %s until the first 200, timed the same way, "+
		"then Remove. Both with the image already built (one unmeasured start first), %d rounds, alternating "+
		"which side goes first. Ratio and difference per round; median [min–max].",
		warmPath, warmPath, rawPollInterval, o.ColdRounds)
}

func (coldRow) Run(ctx context.Context, env *Env) (lines []Line, err error) {
	o := env.Opts
	d, err := startDaemon(ctx, env, "cold")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.stop(context.WithoutCancel(ctx))) }()

	// One unmeasured start builds the image (and warms the engine's caches).
	if _, err := d.get(ctx, "cold-warmup", warmPath); err != nil {
		return nil, fmt.Errorf("warm-up start: %w", err)
	}
	if err := d.destroy(ctx, "cold-warmup"); err != nil {
		return nil, err
	}

	raw, err := newRawEngine(ctx, env)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, raw.close(context.WithoutCancel(ctx))) }()

	var lunoradMs, rawMs, ratio, added sample
	for round := range o.ColdRounds {
		var l, r time.Duration
		for _, side := range alternate([]string{"raw", "lunorad"}, round) {
			id := fmt.Sprintf("cold-%d", round)
			switch side {
			case "lunorad":
				l, err = lunoradColdStart(ctx, d, id)
			case "raw":
				r, err = raw.coldStart(ctx, id)
			}
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", side, round+1, err)
			}
		}
		env.logf("cold round %d/%d: raw %s, lunorad %s", round+1, o.ColdRounds, r.Round(time.Microsecond), l.Round(time.Microsecond))
		lunoradMs, rawMs = append(lunoradMs, millis(l)), append(rawMs, millis(r))
		ratio = append(ratio, float64(l)/float64(r))
		added = append(added, millis(l-r))
	}

	if o.ProfileDir != "" {
		path := filepath.Join(o.ProfileDir, "cold.cpu.pprof")
		// Long enough for the starts below on a loaded machine; the profile
		// ends on its own and is fetched when it does.
		secs := 10
		errc := make(chan error, 1)
		go func() { errc <- d.profile(ctx, secs, path) }()
		var startErr error
		for i := range profiledColdStarts {
			id := "cold-profile-" + strconv.Itoa(i)
			if _, err := lunoradColdStart(ctx, d, id); err != nil {
				startErr = err
				break
			}
		}
		if err := errors.Join(<-errc, startErr); err != nil {
			return nil, fmt.Errorf("profiling the cold path: %w", err)
		}
		env.logf("cold-path CPU profile: %s", path)
	}

	l := Line{
		Figure:   "cold start: request to first byte, new id",
		Baseline: "raw " + rawMs.summary(fmtMillis),
		Measured: lunoradMs.summary(fmtMillis),
		Result:   ratio.summary(fmtRatio) + "; " + added.summary(fmtSignedMillis),
		Target:   fmt.Sprintf("≤ %.2f× (or ≤ %s)", targetColdRatio, fmtSignedMillis(millis(targetColdAdded))),
		Verdict:  Met,
	}
	if ratio.median() > targetColdRatio && added.median() > millis(targetColdAdded) {
		l.Verdict = Missed
		l.Why = fmt.Sprintf("median %.2f× and %s", ratio.median(), fmtSignedMillis(added.median()))
	}
	return []Line{l}, nil
}

// lunoradColdStart times one cold start through the data plane and destroys
// the instance afterwards.
func lunoradColdStart(ctx context.Context, d *daemon, id string) (time.Duration, error) {
	ttfb, _, err := timeToFirstByte(ctx, d.fetchURL(id, warmPath), firstRequestTimeout)
	if err != nil {
		return 0, err
	}
	return ttfb, d.destroy(ctx, id)
}

// rawEngine is the baseline: the same supervisor lunorad uses, driven by
// hand, under a config identity of its own.
type rawEngine struct {
	eng      *supervisor.Docker
	configID string
	image    string
	ports    []int // published, as lifecycle asks
	port     int   // polled for the first 200
	client   *http.Client
}

func newRawEngine(ctx context.Context, env *Env) (*rawEngine, error) {
	// The same container definition as the daemon's, loaded the same way.
	cfg, _, err := writeBenchConfig(env, "raw")
	if err != nil {
		return nil, err
	}
	c := cfg.Containers[benchContainer]
	eng, err := supervisor.New(ctx, supervisor.Options{ConfigID: cfg.ID(), StopGrace: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	img, err := eng.EnsureImage(ctx, c)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	tr := newTransport(1)
	tr.DisableKeepAlives = true // every poll is a new connection, as a first request is
	return &rawEngine{
		eng: eng, configID: cfg.ID(), image: img, ports: c.PublishedPorts(), port: c.DefaultPort,
		client: &http.Client{Transport: tr, Timeout: time.Second},
	}, nil
}

// coldStart creates and starts a container, polls until it answers 200 and
// returns the time from the create call to that answer's first byte; the
// container is removed afterwards (not timed).
func (r *rawEngine) coldStart(ctx context.Context, id string) (time.Duration, error) {
	t0 := time.Now()
	running, err := r.eng.Run(ctx, lifecycle.RunSpec{
		Container: benchContainer, Instance: id, Image: r.image, Ports: r.ports, Generation: 1,
		ConfigHash: "bench-raw",
	})
	if err != nil {
		return 0, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
		defer cancel()
		_ = r.eng.Remove(rctx, running.ID) // leftovers are caught in close
	}()
	url := "http://" + running.Ports[r.port] + warmPath
	deadline := time.Now().Add(firstRequestTimeout)
	for {
		first, err := r.poll(ctx, url)
		if err == nil {
			return first.Sub(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("raw container %s gave no 200 within %s (last: %v)", running.ID, firstRequestTimeout, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(rawPollInterval):
		}
	}
}

// poll sends one GET and returns when its first byte arrived, if it was a 200.
func (r *rawEngine) poll(ctx context.Context, url string) (time.Time, error) {
	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return time.Time{}, err
	}
	res, err := r.client.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("status %d", res.StatusCode)
	}
	return first, nil
}

// close checks that no raw container is left, removing any by id, and
// removes the raw baseline's images.
func (r *rawEngine) close(ctx context.Context) error {
	defer r.eng.Close()
	r.client.CloseIdleConnections()
	lctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	var errs []error
	left, err := r.eng.ListOwned(lctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("listing the raw baseline's leftovers: %w", err))
	}
	for _, c := range left {
		errs = append(errs, fmt.Errorf("raw baseline container %s left behind; removing it", c.ID), r.eng.Remove(lctx, c.ID))
	}
	if _, err := r.eng.RemoveImages(lctx); err != nil {
		errs = append(errs, fmt.Errorf("removing the raw baseline's images: %w", err))
	}
	return errors.Join(errs...)
}
