package router

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statusClasses are the values of the "class" label; the index is status/100.
var statusClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// metrics are the router's Prometheus series. Every series used on the hot
// path is resolved once here, so a request pays an atomic add, not a label
// lookup.
type metrics struct {
	requests    [numKinds][len(statusClasses)]prometheus.Counter
	latency     [numKinds]prometheus.Observer
	retries     [numKinds]prometheus.Counter
	coldStarts  prometheus.Counter
	acquireWait prometheus.Observer
	handler     http.Handler
}

func newMetrics(reg *prometheus.Registry) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "lunorad", Name: "requests_total",
		Help: "HTTP requests served, by route kind (get, any, pool, control) and status class.",
	}, []string{"kind", "class"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "lunorad", Name: "proxy_duration_seconds",
		Help:    "Time from receiving a data-plane request to the end of its response, retries and cold starts included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"kind"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "lunorad", Name: "retries_total",
		Help: "Data-plane attempts after the first, by route kind.",
	}, []string{"kind"})
	coldStarts := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "lunorad", Name: "cold_starts_waited_total",
		Help: "Data-plane attempts that waited for their instance to start.",
	})
	acquireWait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "lunorad", Name: "acquire_duration_seconds",
		Help:    "Time to acquire an instance (zero when warm, the cold start otherwise).",
		Buckets: []float64{.0001, .001, .01, .1, .5, 1, 2.5, 5, 10, 30, 60},
	})
	reg.MustRegister(requests, latency, retries, coldStarts, acquireWait)

	m := &metrics{coldStarts: coldStarts, acquireWait: acquireWait,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})}
	for k := range numKinds {
		for c, class := range statusClasses {
			m.requests[k][c] = requests.WithLabelValues(k.String(), class)
		}
		if k != kindControl {
			m.latency[k] = latency.WithLabelValues(k.String())
			m.retries[k] = retries.WithLabelValues(k.String())
		}
	}
	return m
}

// request counts one finished request.
func (m *metrics) request(kind routeKind, status int) {
	c := status / 100
	if c < 1 || c >= len(statusClasses) {
		c = 0
	}
	m.requests[kind][c].Inc()
}

// dataRequest counts one finished data-plane request and its duration.
func (m *metrics) dataRequest(kind routeKind, status int, since time.Time) {
	m.request(kind, status)
	m.latency[kind].Observe(time.Since(since).Seconds())
}
