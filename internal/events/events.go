// Package events carries lunorad's lifecycle events (PROTOCOL §3) from the
// packages that cause them to the places that show them: the log, the
// GET /v1/events SSE stream and `lunorad logs`.
package events

import (
	"sync"
)

// Type values of Event.Event.
const (
	Start  = "start"
	Stop   = "stop"
	Sleep  = "sleep"
	Error  = "error"
	Build  = "build"
	Reload = "reload"
)

// Level values of Event.Level.
const (
	LevelInfo  = "info"
	LevelError = "error"
)

// Event is one lifecycle event, serialised exactly as PROTOCOL §3 shows.
type Event struct {
	Type      string `json:"type"`   // always "container"
	Source    string `json:"source"` // always "lunora"
	Container string `json:"container"`
	Instance  string `json:"instance"`
	Event     string `json:"event"`
	Level     string `json:"level"`
	Message   string `json:"message,omitempty"`
	TS        int64  `json:"ts"` // epoch ms
}

// New fills in the constant fields of an event.
func New(container, instance, event, level, message string, tsMillis int64) Event {
	return Event{Type: "container", Source: "lunora", Container: container, Instance: instance,
		Event: event, Level: level, Message: message, TS: tsMillis}
}

// Bus fans events out to subscribers. A slow subscriber loses events rather
// than blocking the publisher: lifecycle code must never wait on a viewer.
// The zero value is ready to use.
type Bus struct {
	// mu guards everything that follows.
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	recent []Event // ring of the last few events, for late subscribers
}

const recentCap = 256

// Subscription receives events on C until Close.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	bus     *Bus
	dropped int
}

// Publish delivers e to every subscriber that has room.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recent = append(b.recent, e)
	if len(b.recent) > recentCap {
		b.recent = append(b.recent[:0:0], b.recent[len(b.recent)-recentCap:]...)
	}
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			s.dropped++
		}
	}
}

// Subscribe returns a subscription with a buffer of size events. When replay
// is true the recent history is queued first (as much as fits).
func (b *Bus) Subscribe(size int, replay bool) *Subscription {
	if size < 1 {
		size = 1
	}
	c := make(chan Event, size)
	s := &Subscription{C: c, c: c, bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if replay {
		start := 0
		if len(b.recent) > size {
			start = len(b.recent) - size
		}
		for _, e := range b.recent[start:] {
			c <- e
		}
	}
	if b.subs == nil {
		b.subs = make(map[*Subscription]struct{})
	}
	b.subs[s] = struct{}{}
	return s
}

// Close stops delivery. C is not closed, so a reader selecting on it together
// with its own context never sees a spurious zero event.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	delete(s.bus.subs, s)
}

// Recent returns a copy of the retained history, oldest first.
func (b *Bus) Recent() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.recent...)
}
