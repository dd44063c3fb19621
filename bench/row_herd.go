package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// herdRounds is how many herds the full run sends (each to its own new id).
const herdRounds = 3

// herdRow: many concurrent first requests to one new id must make exactly
// one container and all succeed.
type herdRow struct{}

func (herdRow) Key() string      { return "herd" }
func (herdRow) Name() string     { return "thundering herd" }
func (herdRow) Baseline() string { return "—" }

func (herdRow) Method(o Options) string {
	return fmt.Sprintf("%d goroutines, released together, each send GET %s for the same new id on their own "+
		"connection; every answer must be a 200 with the same body (the same container), and the engine must list "+
		"exactly one container for the id. %d herds, each on a new id, image already built.",
		o.HerdSize, warmPath, herds(o))
}

func herds(o Options) int {
	if o.Smoke {
		return 1
	}
	return herdRounds
}

func (herdRow) Run(ctx context.Context, env *Env) (lines []Line, err error) {
	o := env.Opts
	d, err := startDaemon(ctx, env, "herd")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.stop(context.WithoutCancel(ctx))) }()
	if _, err := d.get(ctx, "herd-warmup", warmPath); err != nil {
		return nil, fmt.Errorf("warm-up start: %w", err)
	}
	if err := d.destroy(ctx, "herd-warmup"); err != nil {
		return nil, err
	}

	var allMs sample
	var problems []string
	minOK, minContainers, maxContainers := o.HerdSize, int(^uint(0)>>1), 0
	for round := range herds(o) {
		id := fmt.Sprintf("herd-%d", round)
		res := herd(ctx, d.fetchURL(id, warmPath), o.HerdSize)
		owned, err := ownedBy(ctx, d.cfg.ID(), &id)
		if err != nil {
			return nil, err
		}
		env.logf("herd %d: %d/%d OK, %d distinct bodies, %d containers, all answered in %s",
			round+1, res.ok, o.HerdSize, res.bodies, len(owned), res.elapsed.Round(time.Millisecond))
		allMs = append(allMs, millis(res.elapsed))
		minOK = min(minOK, res.ok)
		minContainers, maxContainers = min(minContainers, len(owned)), max(maxContainers, len(owned))
		if res.ok != o.HerdSize {
			problems = append(problems, fmt.Sprintf("herd %d: %d of %d answered 200 (first failure: %v)", round+1, res.ok, o.HerdSize, res.firstErr))
		}
		if res.bodies > 1 {
			problems = append(problems, fmt.Sprintf("herd %d: %d different bodies, i.e. more than one container answered", round+1, res.bodies))
		}
		if len(owned) != 1 {
			problems = append(problems, fmt.Sprintf("herd %d: the engine lists %d containers for the id", round+1, len(owned)))
		}
		if err := d.destroy(ctx, id); err != nil {
			return nil, err
		}
	}

	l := Line{
		Figure:   fmt.Sprintf("thundering herd: %d concurrent first requests to one new id", o.HerdSize),
		Baseline: "—",
		Measured: fmt.Sprintf("%d × 200 OK (fewest in a herd), %d container(s); all answered in %s", minOK, maxContainers, allMs.summary(fmtMillis)),
		Result:   "—",
		Target:   fmt.Sprintf("exactly 1 container, %d × 200 OK", o.HerdSize),
		Verdict:  Met,
	}
	if minContainers != maxContainers {
		l.Measured = fmt.Sprintf("%d × 200 OK (fewest in a herd), %d–%d containers; all answered in %s", minOK, minContainers, maxContainers, allMs.summary(fmtMillis))
	}
	if len(problems) > 0 {
		l.Verdict, l.Why = Missed, problems[0]
	}
	return []Line{l}, nil
}

// herdResult is what one herd saw.
type herdResult struct {
	ok       int
	bodies   int // distinct 200 bodies
	firstErr error
	elapsed  time.Duration // release to the last answer
}

// herd releases n requests to url at once, each on its own connection.
func herd(ctx context.Context, url string, n int) herdResult {
	tr := newTransport(n)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, firstRequestTimeout)
	defer cancel()

	type answer struct {
		body string
		err  error
	}
	answers := make([]answer, n)
	release := make(chan struct{})
	var ready, wg sync.WaitGroup
	for i := range n {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			ready.Done()
			if err != nil {
				answers[i].err = err
				return
			}
			<-release
			res, err := tr.RoundTrip(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			switch {
			case err != nil:
				answers[i].err = err
			case res.StatusCode != http.StatusOK:
				answers[i].err = fmt.Errorf("status %d: %s", res.StatusCode, b)
			default:
				answers[i].body = string(b)
			}
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(release)
	wg.Wait()
	res := herdResult{elapsed: time.Since(t0)}
	distinct := map[string]bool{}
	for _, a := range answers {
		if a.err != nil {
			if res.firstErr == nil {
				res.firstErr = a.err
			}
			continue
		}
		res.ok++
		distinct[a.body] = true
	}
	res.bodies = len(distinct)
	return res
}
