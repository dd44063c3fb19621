package router

import (
	"encoding/json"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/events"
)

// sseBuffer is how many events a slow viewer may lag behind before it
// loses some (the bus never blocks a publisher).
const sseBuffer = 256

// serveEvents is GET /v1/events: Server-Sent Events, one JSON object per
// lifecycle event, flushed per event, with a comment heartbeat; ?replay=1
// sends the recent history first. The stream ends when the client goes away
// or the router drains.
func (rt *Router) serveEvents(w http.ResponseWriter, r *http.Request) {
	defer rt.metrics.request(kindControl, http.StatusOK)
	rc := http.NewResponseController(w)
	var c <-chan events.Event
	if rt.events != nil {
		replay := r.URL.Query().Get("replay")
		sub := rt.events.Subscribe(sseBuffer, replay == "1" || replay == "true")
		defer sub.Close()
		c = sub.C
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell buffering proxies to pass events through
	w.WriteHeader(http.StatusOK)
	// A first comment shows the client at once that the stream is live.
	if _, err := io.WriteString(w, ": lunorad events\n\n"); err != nil || rc.Flush() != nil {
		return
	}

	heartbeat := rt.clock.NewTimer(rt.heartbeat)
	defer heartbeat.Stop()
	buf := make([]byte, 0, 512)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-rt.drained:
			return
		case e := <-c:
			data, err := json.Marshal(e)
			if err != nil {
				rt.log.Error("encoding event", zap.Error(err))
				continue
			}
			buf = append(append(append(buf[:0], "data: "...), data...), "\n\n"...)
			if _, err := w.Write(buf); err != nil || rc.Flush() != nil {
				return
			}
		case <-heartbeat.C():
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			heartbeat.Reset(rt.heartbeat)
		}
	}
}
