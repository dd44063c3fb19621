package httpfront_test

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/lunora/lunorad/internal/httpfront"
)

// TestLogging: what net/http prints to its ErrorLog goes to Logger once,
// and an http.ErrAbortHandler panic is not logged (as in net/http).
func TestLogging(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	front := startFront(t, routes(nil, equivalenceHandlers()), nil, func(s *httpfront.Server) { s.Logger = zap.New(core) })

	cases := []struct {
		path string
		want string // in the one entry logged; "" means nothing is logged
	}{
		{"/bad-cl", `invalid Content-Length of "abc"`},
		{"/writeheader-twice", "superfluous"},
		{"/panic", "boom"},
		{"/abort-after-flush", ""},
		{"/small", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			_ = transcript(t, front.addr, get(req("GET", c.path)))
			entries := logs.TakeAll()
			var texts []string
			for _, e := range entries {
				texts = append(texts, fmt.Sprint(e.Message, " ", e.ContextMap()))
			}
			if c.want == "" {
				if len(entries) != 0 {
					t.Errorf("logged %q, want nothing", texts)
				}
				return
			}
			if len(entries) != 1 || !strings.Contains(texts[0], c.want) {
				t.Errorf("logged %q, want one entry containing %q", texts, c.want)
			}
		})
	}
}
