package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/clock"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// Reconnect backoff of the event stream.
const (
	exitsBackoffMin = 100 * time.Millisecond
	exitsBackoffMax = 5 * time.Second
)

// replayWindow is how far before the newest event seen a reconnect asks
// the engine to replay from, and how long delivered events are remembered
// to drop those replays. It covers the engine's reordering (microseconds)
// many times over.
const replayWindow = 2 * time.Second

// oomExitCode is what a container killed by the OOM killer (SIGKILL) exits with.
const oomExitCode = 137

// Exits streams the exits (die, with OOM detection) of this config's
// containers until ctx ends; the channel is closed then.
//
// How the engine's event stream behaves, and what is done about it:
//   - The stream does not end while the engine runs. It ends with an error
//     (io.EOF when the engine closes it, a dial error while it is down), and
//     the client never reopens it (client/events.go): we do, with a backoff of
//     100 ms doubling to 5 s, reset once an event arrives.
//   - Events do not arrive in time order: the engine stamps an event before
//     it takes the lock that orders publication (daemon/events.Log), so two
//     containers dying at once can arrive newest first (seen: 20 µs apart, 1
//     in 120 die events of 24 concurrent kills). Nothing is dropped for
//     being older than an event already seen.
//   - Each reconnect asks for events Since replayWindow before the newest one
//     seen, so exits that happened while disconnected, even stamped out of
//     order, are replayed from the engine's buffer; replays of events already
//     delivered are dropped by identity (container, action, time). The first
//     connection asks Since the call to Exits (wall clock, the engine's time
//     base), so an exit between the call and the connection is not lost.
//   - oom comes before die for the same container, and die carries exitCode
//     (a string) and every container label but no OOM flag. So an oom is
//     remembered per container id until its die; a 137 die with no oom seen
//     (missed while reconnecting) is checked against State.OOMKilled.
//   - A container that dies while the engine itself is down gets no die
//     event at all: callers reconcile with ListOwnedStates after an outage.
func (d *Docker) Exits(ctx context.Context) <-chan lifecycle.Exit {
	out := make(chan lifecycle.Exit, 16)
	w := &exitWatcher{
		d:         d,
		out:       out,
		sinceNano: time.Now().UnixNano(),
		seen:      map[eventKey]int64{},
		oom:       map[string]bool{},
		log:       d.log.Named("events"),
	}
	go w.run(ctx)
	return out
}

// exitWatcher is the state of one Exits stream; only its goroutine uses it.
type exitWatcher struct {
	d   *Docker
	out chan<- lifecycle.Exit
	log *zap.Logger
	// sinceNano is the Exits call until an event arrives, then
	// replayWindow before the newest event handled: the next connection
	// asks for events since then.
	sinceNano int64
	// newestNano is the time of the newest event handled (0: none yet).
	newestNano int64
	// seen holds the events handled since sinceNano (with their time), to
	// drop replays.
	seen map[eventKey]int64
	// oom holds the container ids with an oom event and no die yet.
	oom map[string]bool
	// failing is true from a stream failure until an event arrives again,
	// so an outage is logged once.
	failing bool
}

func (w *exitWatcher) run(ctx context.Context) {
	defer close(w.out)
	backoff := exitsBackoffMin
	for {
		gotEvents, err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if gotEvents {
			backoff = exitsBackoffMin
		}
		if !w.failing {
			w.log.Warn("Docker event stream ended; reconnecting", zap.Error(err))
			w.failing = true
		} else {
			w.log.Debug("Docker event stream still unavailable", zap.Error(err), zap.Duration("retry_in", backoff))
		}
		if clock.Sleep(ctx, w.d.clock, backoff) != nil {
			return
		}
		backoff = min(backoff*2, exitsBackoffMax)
	}
}

// stream reads one connection of the event stream until it fails or ctx
// ends. It reports whether any event arrived.
func (w *exitWatcher) stream(ctx context.Context) (gotEvents bool, err error) {
	// Cancelling sctx ends the client's reader goroutine of this connection.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := ownedFilter(w.d.configID)
	f.Add("type", string(events.ContainerEventType))
	f.Add("event", string(events.ActionDie))
	f.Add("event", string(events.ActionOOM))
	msgs, errs := w.d.api.Events(sctx, events.ListOptions{Filters: f, Since: formatSince(w.sinceNano)})
	for {
		select {
		case <-ctx.Done():
			return gotEvents, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = io.EOF
			}
			return gotEvents, err
		case m := <-msgs:
			gotEvents = true
			if w.failing {
				w.log.Info("Docker event stream is back")
				w.failing = false
			}
			if !w.handle(ctx, m) {
				return gotEvents, ctx.Err()
			}
		}
	}
}

// handle processes one event; false means ctx ended while sending.
func (w *exitWatcher) handle(ctx context.Context, m events.Message) bool {
	if !w.fresh(m) {
		return true
	}
	id := m.Actor.ID
	switch m.Action {
	case events.ActionOOM:
		w.oom[id] = true
		return true
	case events.ActionDie:
	default:
		return true
	}
	exit := lifecycle.Exit{
		ContainerID: id,
		Container:   m.Actor.Attributes[LabelContainer],
		Instance:    m.Actor.Attributes[LabelInstance],
		At:          time.Unix(0, m.TimeNano),
	}
	code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
	if err != nil {
		w.log.Warn("die event without a valid exitCode", zap.String("id", shortID(id)), zap.String("exitCode", m.Actor.Attributes["exitCode"]))
	}
	exit.ExitCode = code
	exit.OOMKilled = w.oom[id] || (code == oomExitCode && w.inspectOOM(ctx, id))
	delete(w.oom, id)
	select {
	case w.out <- exit:
		return true
	case <-ctx.Done():
		return false
	}
}

// eventKey identifies one event: a container dies (or is OOM-killed) once.
type eventKey struct {
	id     string
	action events.Action
	nano   int64
}

// fresh reports whether m was not handled already, and records it. An
// event older than the newest one seen is fresh unless it is a replay:
// the engine may publish events out of time order.
func (w *exitWatcher) fresh(m events.Message) bool {
	key := eventKey{id: m.Actor.ID, action: m.Action, nano: m.TimeNano}
	if _, replay := w.seen[key]; replay {
		return false
	}
	w.seen[key] = m.TimeNano
	if m.TimeNano > w.newestNano {
		w.newestNano = m.TimeNano
		// Never ask for less than was asked first: an exit from before
		// the Exits call is not this stream's.
		w.sinceNano = max(w.sinceNano, m.TimeNano-int64(replayWindow))
		for k, nano := range w.seen {
			if nano < w.sinceNano {
				delete(w.seen, k)
			}
		}
	}
	return true
}

// oomSettle is how long a 137 exit with no oom event is re-checked: on
// Engine 20.10 containerd's OOM and exit notifications are handled
// concurrently, so die can come before oom and before State.OOMKilled is set.
const (
	oomSettleTries    = 4
	oomSettleInterval = 75 * time.Millisecond
)

// inspectOOM asks the engine whether the container was OOM-killed, asking
// again for a moment while the answer is no (see oomSettle); a container
// already removed reads as not OOM-killed at once.
func (w *exitWatcher) inspectOOM(ctx context.Context, id string) bool {
	for try := 0; ; try++ {
		killed, gone := w.inspectOOMOnce(ctx, id)
		if killed || gone || try == oomSettleTries-1 {
			return killed
		}
		if clock.Sleep(ctx, w.d.clock, oomSettleInterval) != nil {
			return false
		}
	}
}

func (w *exitWatcher) inspectOOMOnce(ctx context.Context, id string) (killed, gone bool) {
	ictx, cancel := w.d.callCtx(ctx)
	defer cancel()
	insp, err := w.d.api.ContainerInspect(ictx, id)
	if err != nil {
		if !cerrdefs.IsNotFound(err) && !errors.Is(err, context.Canceled) {
			w.log.Debug("cannot inspect a dead container for OOM", zap.String("id", shortID(id)), zap.Error(err))
		}
		return false, true
	}
	return insp.State != nil && insp.State.OOMKilled, false
}

// formatSince renders a UnixNano time the way the events API takes it.
func formatSince(nano int64) string {
	return fmt.Sprintf("%d.%09d", nano/int64(time.Second), nano%int64(time.Second))
}
