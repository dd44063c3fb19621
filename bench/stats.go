package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is one figure measured once per round.
type sample []float64

func (s sample) sorted() []float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// median is the middle value (the mean of the two middle ones for an even
// count); NaN for an empty sample.
func (s sample) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := s.sorted()
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

func (s sample) min() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Min(s)
}

func (s sample) max() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Max(s)
}

// summary formats "median [min–max]" with f, or just the value for one round.
func (s sample) summary(f func(float64) string) string {
	if len(s) == 0 {
		return "n/a"
	}
	if len(s) == 1 {
		return f(s[0])
	}
	// The unit once, after the median: "12 345 req/s [12 001–12 900]".
	lo, _ := splitUnit(f(s.min()))
	hi, _ := splitUnit(f(s.max()))
	return fmt.Sprintf("%s [%s–%s]", f(s.median()), lo, hi)
}

// splitUnit splits a formatted value into its number and its unit.
func splitUnit(v string) (num, unit string) {
	i := strings.IndexFunc(v, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '.' || r == '+' || r == '-' || r == '\u2009')
	})
	if i < 0 {
		return v, ""
	}
	return v[:i], v[i:]
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of durations
// sorted in increasing order.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Formatters for summaries.

// fmtRate formats requests per second with a thin thousands separator.
func fmtRate(v float64) string { return groupThousands(int64(math.Round(v))) + " req/s" }

func fmtRatio(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

// fmtMicros formats a value in microseconds, signed when negative.
func fmtMicros(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " µs" }

// fmtSignedMicros formats an added latency, always with its sign.
func fmtSignedMicros(v float64) string {
	if v >= 0 {
		return "+" + fmtMicros(v)
	}
	return fmtMicros(v)
}

func fmtMillis(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" }

// fmtSignedMillis formats an added duration in milliseconds, always with its sign.
func fmtSignedMillis(v float64) string {
	if v >= 0 {
		return "+" + fmtMillis(v)
	}
	return fmtMillis(v)
}

func fmtMiB(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " MiB" }

func fmtPercent(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " %" }

func fmtSeconds(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " s" }

func groupThousands(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u2009") // thin space: no locale argument about ',' and '.'
		}
		b.WriteRune(c)
	}
	return b.String()
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
