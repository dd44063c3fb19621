// Command bench is lunorad's benchmark suite: it measures the figures the
// product promises (warm proxy throughput and latency, cold start, the
// thundering herd, footprint at scale), each against a baseline taken in the
// same run on the same machine, and writes BENCHMARKS.md.
//
//	go run ./bench -out BENCHMARKS.md     # make bench: the full run (a few minutes)
//	go run ./bench -smoke                 # make bench-smoke: every row for a moment
//	go run ./bench -rows warm,cold -profile /tmp/prof
//
// It starts the real lunorad binary as a separate process per row, drives it
// with a load generator of its own, and removes every container it caused.
// It never runs as part of `go test ./...` (see smoke_test.go).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lunora/lunorad/internal/daemon/daemontest"
	"github.com/lunora/lunorad/internal/supervisor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run parses args, measures the selected rows and writes the report. It
// returns an error when a row could not be measured (a missed target is not
// an error: the report says so).
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var (
		out          = fs.String("out", "", "write the report to this file (default: stdout)")
		smoke        = fs.Bool("smoke", false, "a very short run of every row, to check the harness")
		rowsFlag     = fs.String("rows", "", "comma-separated row keys to run (default: all): "+strings.Join(rowKeys(), ","))
		rounds       = fs.Int("rounds", 0, "A/B rounds per row (0: the mode's default)")
		duration     = fs.Duration("duration", 0, "one throughput run (0: the mode's default)")
		profileDir   = fs.String("profile", "", "save CPU profiles of the daemon's warm and cold paths into this folder")
		lunoradBin   = fs.String("lunorad", "", "a prebuilt lunorad binary (default: build ./cmd/lunorad)")
		notesPath    = fs.String("notes", "", "hand-written notes appended to the report (default: bench/NOTES.md)")
		installNginx = fs.Bool("install-nginx", true, "apt-get install nginx-light when nginx is missing (root only)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := defaultOptions()
	if *smoke {
		o = smokeOptions()
	}
	if *rounds > 0 {
		o.Rounds, o.ColdRounds = *rounds, *rounds
	}
	if *duration > 0 {
		o.Duration = *duration
	}
	o.ProfileDir = *profileDir
	rows, err := selectRows(*rowsFlag)
	if err != nil {
		return err
	}
	root := daemontest.RepoRoot()
	if *notesPath == "" {
		*notesPath = filepath.Join(root, "bench", "NOTES.md")
	}
	notes, err := os.ReadFile(*notesPath)
	if err != nil {
		return fmt.Errorf("reading the notes: %w", err)
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return err
		}
	}

	work, err := os.MkdirTemp("", "lunorad-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	env := &Env{Opts: o, WorkDir: work, Progress: os.Stderr, Lunorad: *lunoradBin, Hz: clockTicksPerSecond()}
	if env.Lunorad == "" {
		env.Lunorad = filepath.Join(work, "lunorad")
		env.logf("building lunorad")
		if err := goBuild(ctx, root, env.Lunorad, "./cmd/lunorad", "-ldflags", "-X main.version=bench"); err != nil {
			return err
		}
	}
	env.RefProxy = filepath.Join(work, "refproxy")
	if err := goBuild(ctx, root, env.RefProxy, "./bench/refproxy"); err != nil {
		return err
	}
	env.logf("building the testserver image context")
	env.ImageDir, err = daemontest.BuildTestserver()
	if err != nil {
		return err
	}
	defer os.RemoveAll(env.ImageDir)
	if slices.ContainsFunc(rows, func(r Row) bool { _, ok := r.(nginxPeer); return ok }) {
		env.Nginx, env.NginxWhy = findNginx(ctx, *installNginx, env.logf)
	}
	machine, err := describeMachine(ctx, root, env.Nginx)
	if err != nil {
		return err
	}

	var results []rowResult
	var failed []string
	for _, row := range rows {
		if ctx.Err() != nil {
			break
		}
		env.logf("row %s: %s", row.Key(), row.Name())
		t0 := time.Now()
		lines, err := row.Run(ctx, env)
		results = append(results, rowResult{row: row, lines: lines, err: err, took: time.Since(t0)})
		if err != nil {
			env.logf("row %s failed: %v", row.Key(), err)
			failed = append(failed, row.Key())
		}
	}

	machine.LoadAvgEnd = loadAverage()
	var report bytes.Buffer
	command := "go run ./bench " + strings.Join(args, " ")
	if err := writeReport(&report, strings.TrimSpace(command), o, machine, results, string(notes)); err != nil {
		return err
	}
	if *out == "" {
		_, err = os.Stdout.Write(report.Bytes())
	} else {
		err = os.WriteFile(*out, report.Bytes(), 0o644)
		env.logf("wrote %s", *out)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(failed) > 0 {
		return fmt.Errorf("rows not measured: %s", strings.Join(failed, ", "))
	}
	return nil
}

func rowKeys() []string {
	var keys []string
	for _, r := range allRows() {
		keys = append(keys, r.Key())
	}
	return keys
}

// selectRows returns the rows named in list (all for ""), in report order.
func selectRows(list string) ([]Row, error) {
	if list == "" {
		return allRows(), nil
	}
	want := map[string]bool{}
	for k := range strings.SplitSeq(list, ",") {
		want[strings.TrimSpace(k)] = true
	}
	var rows []Row
	for _, r := range allRows() {
		if want[r.Key()] {
			rows = append(rows, r)
			delete(want, r.Key())
		}
	}
	if len(want) > 0 {
		var unknown []string
		for k := range want {
			unknown = append(unknown, k)
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("-rows: unknown %s (known: %s)", strings.Join(unknown, ", "), strings.Join(rowKeys(), ", "))
	}
	return rows, nil
}

// goBuild compiles pkg (relative to root) into out.
func goBuild(ctx context.Context, root, out, pkg string, flags ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, b)
	}
	return nil
}

// describeMachine gathers the facts the report's machine section states.
func describeMachine(ctx context.Context, root, nginx string) (machineInfo, error) {
	m := machineInfo{
		Date: time.Now(), NumCPU: runtime.NumCPU(), Go: runtime.Version(), Nginx: nginxVersion(nginx),
		CPU: cpuModel(), Kernel: readTrim("/proc/sys/kernel/osrelease"), GoMaxProc: "2",
	}
	m.LoadAvg = loadAverage()
	ectx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	eng, err := supervisor.New(ectx, supervisor.Options{ConfigID: "bench-probe"})
	if err != nil {
		return m, err
	}
	version, api := eng.Engine()
	_ = eng.Close()
	m.Docker = fmt.Sprintf("%s (API %s)", version, api)
	m.Commit = gitDescribe(ctx, root)
	return m, nil
}

// loadAverage is /proc/loadavg's three averages: how busy the shared machine was.
func loadAverage() string {
	if f := strings.Fields(readTrim("/proc/loadavg")); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

func cpuModel() string {
	for line := range strings.SplitSeq(readTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// gitDescribe names the commit measured, flagging uncommitted changes.
func gitDescribe(ctx context.Context, root string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		b, err := cmd.Output()
		return strings.TrimSpace(string(b)), err
	}
	head, err := git("rev-parse", "--short", "HEAD")
	if err != nil {
		return "an unknown commit"
	}
	if status, err := git("status", "--porcelain"); err == nil && status != "" {
		return "commit " + head + " with uncommitted changes"
	}
	return "commit " + head
}
