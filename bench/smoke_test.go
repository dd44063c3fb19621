package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every row of the harness for a moment against the real
// engine (make bench-smoke). It is opt-in, so that `go test ./...` stays
// fast: set LUNORAD_BENCH_SMOKE=1. It checks that the harness measures every
// row and that the correctness figure (the herd) holds; it never asserts
// speed, which a smoke run cannot measure.
func TestSmoke(t *testing.T) {
	if os.Getenv("LUNORAD_BENCH_SMOKE") != "1" {
		t.Skip("benchmark smoke run skipped; set LUNORAD_BENCH_SMOKE=1 (or run `make bench-smoke`) to run it")
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := run(ctx, []string{"-smoke", "-out", out}); err != nil {
		t.Fatalf("smoke run: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(b)
	if strings.Contains(report, string(Failed)) {
		t.Errorf("a row was not measured:\n%s", report)
	}
	for _, r := range allRows() {
		if !strings.Contains(report, "`-rows "+r.Key()+"`") {
			t.Errorf("the report has no row %q", r.Key())
		}
	}
	var herd string
	for line := range strings.SplitSeq(report, "\n") {
		if strings.HasPrefix(line, "| thundering herd") {
			herd = line
		}
	}
	if !strings.HasSuffix(herd, "| met |") {
		t.Errorf("thundering herd line = %q, want met (exactly one container, every request 200)", herd)
	}
	if !strings.Contains(report, notesMarker) {
		t.Error("the report lacks the hand-written notes")
	}
}
