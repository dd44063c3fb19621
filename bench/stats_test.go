package main

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSampleMedianMinMax(t *testing.T) {
	cases := []struct {
		in            sample
		med, min, max float64
	}{
		{sample{3}, 3, 3, 3},
		{sample{5, 1, 3}, 3, 1, 5},
		{sample{4, 1, 3, 2}, 2.5, 1, 4},
		{sample{10, 10, 1, 10, 10}, 10, 1, 10},
	}
	for _, c := range cases {
		if got := c.in.median(); got != c.med {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.med)
		}
		if got := c.in.min(); got != c.min {
			t.Errorf("min(%v) = %v, want %v", c.in, got, c.min)
		}
		if got := c.in.max(); got != c.max {
			t.Errorf("max(%v) = %v, want %v", c.in, got, c.max)
		}
	}
	if !math.IsNaN(sample{}.median()) {
		t.Error("median of an empty sample should be NaN")
	}
	in := sample{5, 1, 3}
	in.median()
	if !slices.Equal(in, sample{5, 1, 3}) {
		t.Errorf("median reordered its input: %v", in)
	}
}

func TestSampleSummary(t *testing.T) {
	if got := (sample{0.5, 0.75, 0.7}).summary(fmtRatio); got != "0.70× [0.50–0.75]" {
		t.Errorf("summary = %q", got)
	}
	if got := (sample{12345.4, 9000, 13000}).summary(fmtRate); got != "12\u2009345 req/s [9\u2009000–13\u2009000]" {
		t.Errorf("summary = %q", got)
	}
	if got := (sample{-3, 12, 40}).summary(fmtSignedMicros); got != "+12 µs [-3–+40]" {
		t.Errorf("summary = %q", got)
	}
	if got := (sample{12345.4}).summary(fmtRate); got != "12\u2009345 req/s" {
		t.Errorf("one-round summary = %q, want the value alone", got)
	}
	if got := (sample{}).summary(fmtRate); got != "n/a" {
		t.Errorf("empty summary = %q", got)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Microsecond}, {99, 99 * time.Microsecond}, {100, 100 * time.Microsecond}, {0.1, time.Microsecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{groupThousands(0), "0"},
		{groupThousands(999), "999"},
		{groupThousands(1000), "1\u2009000"},
		{groupThousands(-1234567), "-1\u2009234\u2009567"},
		{fmtSignedMicros(12.4), "+12 µs"},
		{fmtSignedMicros(-3), "-3 µs"},
		{fmtSignedMillis(25), "+25.0 ms"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestAlternateRotatesOrder(t *testing.T) {
	sides := []string{"a", "b", "c"}
	firsts := map[string]bool{}
	for r := range 3 {
		order := alternate(sides, r)
		if len(order) != 3 || !slices.Contains(order, "a") || !slices.Contains(order, "b") || !slices.Contains(order, "c") {
			t.Fatalf("round %d: order %v is not a permutation", r, order)
		}
		firsts[order[0]] = true
	}
	if len(firsts) != 3 {
		t.Errorf("each side should go first once in three rounds; firsts %v", firsts)
	}
	if got := alternate([]string{"a", "b"}, 1); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("round 1 of two sides = %v, want b first", got)
	}
	if !slices.Equal(sides, []string{"a", "b", "c"}) {
		t.Errorf("alternate modified its input: %v", sides)
	}
}

func TestParseStatTicks(t *testing.T) {
	// Field 2 holds spaces and a ')' to make sure fields count from the last one.
	stat := "4242 (lunorad (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 731 269 0 0 20 0 9 0 100 1000000 3000 18446744073709551615"
	got, err := parseStatTicks(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 1000 {
		t.Errorf("utime+stime = %d, want 731+269", got)
	}
	if _, err := parseStatTicks("4242 (short) S 1 2"); err == nil {
		t.Error("a truncated stat line should fail")
	}
}

func TestSelectRows(t *testing.T) {
	rows, err := selectRows("cold, warm")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range rows {
		keys = append(keys, r.Key())
	}
	if !slices.Equal(keys, []string{"warm", "cold"}) {
		t.Errorf("rows = %v, want report order warm, cold", keys)
	}
	if _, err := selectRows("warm,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown row: err = %v", err)
	}
	all, _ := selectRows("")
	if len(all) != len(allRows()) {
		t.Errorf("empty -rows selects %d rows, want all %d", len(all), len(allRows()))
	}
	seen := map[string]bool{}
	for _, r := range allRows() {
		if seen[r.Key()] {
			t.Errorf("duplicate row key %q", r.Key())
		}
		seen[r.Key()] = true
	}
}

func TestParseSchedstat(t *testing.T) {
	got, err := parseSchedstat("1234567 89 10\n")
	if err != nil || got != 1234567*time.Nanosecond {
		t.Fatalf("parseSchedstat = %v, %v; want 1.234567ms", got, err)
	}
	for _, bad := range []string{"", "12 34", "x 1 2", "1 2 3 4"} {
		if _, err := parseSchedstat(bad); err == nil {
			t.Errorf("parseSchedstat(%q) accepted", bad)
		}
	}
}

func TestProcRunTimeOfThisProcess(t *testing.T) {
	before, err := procRunTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1e7; i++ { // some CPU
		sink += i
	}
	after, err := procRunTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("run time %v then %v: did not grow while computing", before, after)
	}
}

var sink int
