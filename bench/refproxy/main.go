// Command refproxy is the benchmark's reference for what Go's standard
// library alone costs per proxied request on the bench machine: an
// httputil.ReverseProxy with an http.Transport tuned like lunorad's router
// (keep-alive pool, no proxy from the environment, no compression), and
// nothing else. It exists only for bench/.
//
//	refproxy LISTEN_ADDR UPSTREAM_ADDR
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: refproxy LISTEN_ADDR UPSTREAM_ADDR")
		os.Exit(2)
	}
	target := &url.URL{Scheme: "http", Host: os.Args[2]}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = "container"
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		// The load generator cancels in-flight requests at the end of each
		// run; those are not errors worth a line each.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := &http.Server{Addr: os.Args[1], Handler: proxy, ReadHeaderTimeout: 30 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "refproxy:", err)
		os.Exit(1)
	}
}
