// Command hello is the example container of configs/example: a tiny HTTP
// server built FROM scratch, so the example runs with no registry.
//
// It answers like a container behind lunorad would on Cloudflare: it sees
// Host: container, reads its CLOUDFLARE_* environment, and shuts down cleanly
// on SIGTERM so a sleep or hard timeout stops it at once.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/greet", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		fmt.Fprintf(w, "%s, %s! (instance %s, up %s)\n", greeting(), name,
			os.Getenv("CLOUDFLARE_DURABLE_OBJECT_ID")[:12], time.Since(started).Round(time.Millisecond))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, k := range []string{"GREETING", "CLOUDFLARE_APPLICATION_ID", "CLOUDFLARE_COUNTRY_A2",
			"CLOUDFLARE_LOCATION", "CLOUDFLARE_REGION", "CLOUDFLARE_DURABLE_OBJECT_ID"} {
			env[k] = os.Getenv(k)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"host": r.Host, "env": env})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello container: %s %s (Host: %s)\n", r.Method, r.URL.RequestURI(), r.Host)
	})

	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("hello: listening on :%s", port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func greeting() string {
	if g := os.Getenv("GREETING"); g != "" {
		return g
	}
	return "hello"
}
