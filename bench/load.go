package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator is a plain Go client in this process, never the system
// under test: one http.Transport per run, keep-alive, no proxy from the
// environment, no compression.

// requestTimeout bounds one warm request; a warm request taking this long
// means something is broken, not slow.
const requestTimeout = 10 * time.Second

func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:          max(conns, 64),
		MaxIdleConnsPerHost:   max(conns, 64),
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		DisableCompression:    true,
	}
}

// roundTrip sends one GET and drains the body; a status other than 200 is an error.
func roundTrip(ctx context.Context, tr http.RoundTripper, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, res.StatusCode)
	}
	return nil
}

// loadResult is one throughput run.
type loadResult struct {
	rps float64
	// cpuPerReq is the proxy's CPU time per request over the measured
	// window (0 when no cpu probe was given).
	cpuPerReq time.Duration
}

// throughput runs clients keep-alive clients against url for warmup (not
// counted) and then for d, and returns completed requests per second over d.
// cpu, when set, reads the CPU time used so far by the process under test.
// Any failed request fails the run: a proxy that errors is not fast.
func throughput(ctx context.Context, url string, clients int, warmup, d time.Duration, cpu func() (time.Duration, error)) (loadResult, error) {
	tr := newTransport(clients)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
				err := roundTrip(rctx, tr, url)
				rcancel()
				if err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				done.Add(1)
			}
		}()
	}

	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	readCPU := func() time.Duration {
		if cpu == nil {
			return 0
		}
		v, err := cpu()
		if err != nil {
			errOnce.Do(func() { firstErr = err; cancel() })
		}
		return v
	}
	var res loadResult
	if sleep(warmup) {
		n0, c0, t0 := done.Load(), readCPU(), time.Now()
		if sleep(d) {
			n1, c1, t1 := done.Load(), readCPU(), time.Now()
			res.rps = float64(n1-n0) / t1.Sub(t0).Seconds()
			if n1 > n0 {
				res.cpuPerReq = (c1 - c0) / time.Duration(n1-n0)
			}
		}
	}
	cancel()
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	if res.rps == 0 {
		return loadResult{}, fmt.Errorf("throughput run on %s interrupted: %w", url, context.Cause(ctx))
	}
	return res, nil
}

// latencies sends warm requests (not recorded), then n sequential requests
// on one keep-alive connection, and returns their durations sorted.
func latencies(ctx context.Context, url string, warm, n int) ([]time.Duration, error) {
	tr := newTransport(1)
	defer tr.CloseIdleConnections()
	out := make([]time.Duration, 0, n)
	for i := range warm + n {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		t0 := time.Now()
		err := roundTrip(rctx, tr, url)
		elapsed := time.Since(t0)
		cancel()
		if err != nil {
			return nil, err
		}
		if i >= warm {
			out = append(out, elapsed)
		}
	}
	slices.Sort(out)
	return out, nil
}

// timeToFirstByte sends one GET on a fresh connection and returns the time
// from sending it to the first byte of the response, which must be a 200.
func timeToFirstByte(ctx context.Context, url string, timeout time.Duration) (time.Duration, []byte, error) {
	tr := newTransport(1)
	defer tr.CloseIdleConnections()
	tr.ResponseHeaderTimeout = timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	res, err := tr.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, err
	}
	if res.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("GET %s: %d %s", url, res.StatusCode, body)
	}
	if first.IsZero() {
		return 0, nil, errors.New("no first-byte time recorded")
	}
	return first.Sub(t0), body, nil
}
