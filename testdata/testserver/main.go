// Command testserver is the HTTP app inside lunorad's shared test image. It
// exists only for tests: it echoes requests and can be told to start slowly,
// never become ready, crash, run out of memory, stream, or ignore SIGTERM.
// Stdlib only, built with CGO_ENABLED=0 so that it runs FROM scratch.
//
// Environment:
//
//	PORT                  main listener (default 8080)
//	SECOND_PORT           optional second listener serving the same routes
//	SECOND_PORT_DELAY_MS  delay before the second listener opens
//	START_DELAY_MS        sleep before listening at all
//	READY_DELAY_MS        GET /ready answers 503 until this long after start
//	NEVER_READY=1         GET /ready always answers 503
//	IGNORE_SIGTERM=1      SIGTERM is ignored (only SIGKILL stops the server)
//	INSTANCE              echoed back as "instance" by the echo route
//	EXIT_AFTER_MS         exit this long after the process started, whatever it is doing
//	EXIT_CODE             the code of that exit (default 1)
//
// GET /stats describes what the server has seen so far (see statsReport), so
// tests can prove which requests reached the app, and when.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var started = time.Now()

// seen is what GET /stats reports.
var seen = newStats()

func main() {
	if os.Getenv("IGNORE_SIGTERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	stop := make(chan os.Signal, 1)
	if os.Getenv("IGNORE_SIGTERM") != "1" {
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	}
	if os.Getenv("EXIT_AFTER_MS") != "" {
		code, err := strconv.Atoi(os.Getenv("EXIT_CODE"))
		if err != nil {
			code = 1
		}
		time.AfterFunc(envMillis("EXIT_AFTER_MS"), func() { os.Exit(code) })
	}

	time.Sleep(envMillis("START_DELAY_MS"))
	mux := seen.record(routes())
	servers := []*http.Server{serve(envOr("PORT", "8080"), mux)}
	if second := os.Getenv("SECOND_PORT"); second != "" {
		time.Sleep(envMillis("SECOND_PORT_DELAY_MS"))
		servers = append(servers, serve(second, mux))
	}

	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx) // best effort: we exit 0 either way, as a well-behaved app would
	}
	os.Exit(0)
}

func serve(port string, h http.Handler) *http.Server {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatalf("listen on %s: %v", port, err)
	}
	seen.listening(port)
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("serve on %s: %v", port, err)
		}
	}()
	return s
}

func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", echo)
	mux.HandleFunc("/greet", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", os.Getenv("HOSTNAME"))
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 100 || code > 999 {
			http.Error(w, "bad status code", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(queryInt(r, "code", 3))
	})
	mux.HandleFunc("/oom", func(w http.ResponseWriter, r *http.Request) {
		var hoard [][]byte
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // touch every page so the memory is really committed
			}
			hoard = append(hoard, b)
		}
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		writeJSON(w, env)
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		stream(w, r, func(i int) string { return fmt.Sprintf("id: %d\ndata: event %d\n\n", i, i) })
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		stream(w, r, func(i int) string { return fmt.Sprintf("chunk %d\n", i) })
	})
	mux.HandleFunc("/trailers", trailers)
	mux.HandleFunc("/ws", websocketEcho)
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(queryInt(r, "ms", 0)) * time.Millisecond):
			fmt.Fprintf(w, "slept %dms", queryInt(r, "ms", 0))
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("NEVER_READY") == "1" || time.Since(started) < envMillis("READY_DELAY_MS") {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		seen.ready()
		fmt.Fprint(w, "ready")
	})
	mux.HandleFunc("/live", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "live") })
	// /args shows the command line the process runs with (argv[0] included),
	// so tests can see an entrypoint that replaced the image's.
	mux.HandleFunc("/args", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, os.Args) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, seen.report()) })
	return mux
}

// probeUserAgent marks lunorad's readiness probes, which tests tell apart
// from proxied traffic.
const probeUserAgent = "lunorad-readiness"

// stats counts requests per path. Memory stays bounded by the number of
// distinct paths, so long-running tests that never read it pay nothing.
type stats struct {
	// mu guards every field below.
	mu              sync.Mutex
	listeningAt     map[string]float64
	readyAt         *float64 // when GET /ready first answered 200
	firstNonProbeAt *float64 // when the first request that was not a probe came
	paths           map[string]*pathStats
}

// pathStats is one path's entry in GET /stats. Times are milliseconds since
// the process started.
type pathStats struct {
	Count   int            `json:"count"`
	Probes  int            `json:"probes"` // requests with User-Agent lunorad-readiness
	FirstAt float64        `json:"firstAtMs"`
	LastAt  float64        `json:"lastAtMs"`
	Hosts   map[string]int `json:"hosts"`
	Ports   map[string]int `json:"ports"` // by the local port the request came in on
}

// statsReport is the body of GET /stats. Times are milliseconds since the
// process started; a time that has not happened yet is absent.
type statsReport struct {
	ListeningAt     map[string]float64    `json:"listeningAtMs"`
	ReadyAt         *float64              `json:"readyAtMs,omitempty"`
	FirstNonProbeAt *float64              `json:"firstNonProbeAtMs,omitempty"`
	Paths           map[string]*pathStats `json:"paths"`
}

func newStats() *stats {
	return &stats{listeningAt: map[string]float64{}, paths: map[string]*pathStats{}}
}

func sinceStart() float64 { return float64(time.Since(started).Microseconds()) / 1000 }

func (s *stats) listening(port string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeningAt[port] = sinceStart()
}

func (s *stats) ready() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readyAt == nil {
		t := sinceStart()
		s.readyAt = &t
	}
}

// record counts every request but GET /stats itself, before h serves it.
func (s *stats) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/stats" {
			s.count(r)
		}
		h.ServeHTTP(w, r)
	})
}

func (s *stats) count(r *http.Request) {
	port := ""
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		_, port, _ = net.SplitHostPort(addr.String())
	}
	probe := r.UserAgent() == probeUserAgent
	now := sinceStart()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.paths[r.URL.Path]
	if p == nil {
		p = &pathStats{FirstAt: now, Hosts: map[string]int{}, Ports: map[string]int{}}
		s.paths[r.URL.Path] = p
	}
	p.Count++
	p.LastAt = now
	p.Hosts[r.Host]++
	p.Ports[port]++
	if probe {
		p.Probes++
	} else if s.firstNonProbeAt == nil {
		s.firstNonProbeAt = &now
	}
}

func (s *stats) report() statsReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := statsReport{ListeningAt: map[string]float64{}, Paths: map[string]*pathStats{}}
	for k, v := range s.listeningAt {
		rep.ListeningAt[k] = v
	}
	for k, v := range s.paths {
		c := *v
		c.Hosts, c.Ports = map[string]int{}, map[string]int{}
		for h, n := range v.Hosts {
			c.Hosts[h] = n
		}
		for p, n := range v.Ports {
			c.Ports[p] = n
		}
		rep.Paths[k] = &c
	}
	rep.ReadyAt, rep.FirstNonProbeAt = s.readyAt, s.firstNonProbeAt // never written again once set
	return rep
}

// echo answers any unknown path with a JSON description of the request.
func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CLOUDFLARE_") || k == "HOSTNAME" || k == "PORT" {
			env[k] = v
		}
	}
	writeJSON(w, map[string]any{
		"method":   r.Method,
		"path":     r.URL.Path,
		"rawQuery": r.URL.RawQuery,
		"host":     r.Host,
		"headers":  r.Header,
		"body":     string(body),
		"env":      env,
		"instance": os.Getenv("INSTANCE"),
	})
}

// stream writes n pieces, interval_ms apart, flushing each as it is produced.
func stream(w http.ResponseWriter, r *http.Request, piece func(i int) string) {
	n, interval := queryInt(r, "n", 5), time.Duration(queryInt(r, "interval_ms", 50))*time.Millisecond
	flusher, _ := w.(http.Flusher)
	for i := 0; i < n; i++ {
		if i > 0 {
			select {
			case <-time.After(interval):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, piece(i))
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// trailers sends X-Checksum (sha256 of the request body) as a response
// trailer and echoes every request trailer as X-Echo-<name>.
func trailers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "X-Checksum")
	sum := sha256.New()
	n, _ := io.Copy(sum, r.Body) // request trailers are only readable after the body
	got := map[string]string{}
	for k := range r.Trailer {
		got[k] = r.Trailer.Get(k)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"bodyBytes": n, "requestTrailers": got})
	w.Header().Set("X-Checksum", hex.EncodeToString(sum.Sum(nil)))
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.Header().Set(http.TrailerPrefix+"X-Echo-"+k, got[k])
	}
}

// websocketEcho is a minimal RFC 6455 server for tests only: the handshake,
// then every text/binary/continuation frame is sent back as received
// (unmasked, fragmentation preserved), pings get pongs, and a close frame is
// echoed before the connection closes. No extensions, no UTF-8 validation.
func websocketEcho(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") || key == "" {
		http.Error(w, "websocket upgrade required", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(h[:]))
	if rw.Flush() != nil {
		return
	}
	for {
		fin, opcode, payload, err := readFrame(rw.Reader)
		if err != nil {
			return
		}
		switch opcode {
		case 0x0, 0x1, 0x2: // continuation, text, binary
			err = writeFrame(rw.Writer, fin, opcode, payload)
		case 0x8: // close: echo it and stop
			_ = writeFrame(rw.Writer, true, 0x8, payload)
			return
		case 0x9: // ping
			err = writeFrame(rw.Writer, true, 0xA, payload)
		}
		if err != nil {
			return
		}
	}
}

func readFrame(r *bufio.Reader) (fin bool, opcode byte, payload []byte, err error) {
	var head [2]byte
	if _, err = io.ReadFull(r, head[:]); err != nil {
		return
	}
	fin, opcode = head[0]&0x80 != 0, head[0]&0x0F
	masked, n := head[1]&0x80 != 0, uint64(head[1]&0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(r, ext[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(r, ext[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 16<<20 {
		return false, 0, nil, errors.New("frame too large")
	}
	var mask [4]byte
	if masked { // clients must mask; be lenient if one does not
		if _, err = io.ReadFull(r, mask[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return fin, opcode, payload, nil
}

func writeFrame(w *bufio.Writer, fin bool, opcode byte, payload []byte) error {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	head := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		head = append(head, byte(n))
	case n <= 0xFFFF:
		head = append(head, 126, byte(n>>8), byte(n))
	default:
		head = append(head, 127)
		head = binary.BigEndian.AppendUint64(head, uint64(n))
	}
	w.Write(head)
	w.Write(payload)
	return w.Flush()
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func queryInt(r *http.Request, name string, def int) int {
	if n, err := strconv.Atoi(r.URL.Query().Get(name)); err == nil {
		return n
	}
	return def
}

func envMillis(name string) time.Duration {
	n, _ := strconv.Atoi(os.Getenv(name))
	return time.Duration(n) * time.Millisecond
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
