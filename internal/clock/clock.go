// Package clock abstracts time so that timer-driven behaviour (sleepAfter,
// hardTimeout, retry backoff, readiness deadlines) can be tested without
// sleeping. Production code uses Real; tests use Fake and Advance it.
package clock

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock is the subset of package time that lunorad's timers need.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d. Stop reports whether it
	// prevented the call.
	AfterFunc(d time.Duration, f func()) Timer
	// NewTimer returns a timer whose channel receives once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the common surface of time.Timer and the fake timer.
type Timer interface {
	// C is nil for timers made by AfterFunc.
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Sleep waits for d on c, or until ctx is done, whichever is first.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{t: time.AfterFunc(d, f)}
}

func (Real) NewTimer(d time.Duration) Timer { return realTimer{t: time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a manually advanced clock. The zero value is not usable; call NewFake.
type Fake struct {
	// mu guards everything that follows.
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	waiters []chan struct{}
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(d, fn)
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(d, nil)
}

func (f *Fake) add(d time.Duration, fn func()) *fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, fn: fn}
	if fn == nil {
		t.c = make(chan time.Time, 1)
	}
	t.when = f.now.Add(d)
	t.active = true
	f.timers = append(f.timers, t)
	f.notifyLocked()
	return t
}

// notifyLocked wakes everyone blocked in BlockUntil.
func (f *Fake) notifyLocked() {
	for _, w := range f.waiters {
		close(w)
	}
	f.waiters = nil
}

// Timers reports how many timers are armed.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if t.active {
			n++
		}
	}
	return n
}

// BlockUntil waits until at least n timers are armed or ctx is done. Tests use
// it to know that the code under test has reached its wait before advancing.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed := 0
		for _, t := range f.timers {
			if t.active {
				armed++
			}
		}
		if armed >= n {
			f.mu.Unlock()
			return nil
		}
		w := make(chan struct{})
		f.waiters = append(f.waiters, w)
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w:
		}
	}
}

// Advance moves the clock forward by d, firing every timer that falls due, in
// order of due time. AfterFunc callbacks run synchronously, one after another,
// so a test observes their effects as soon as Advance returns.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	for {
		f.mu.Lock()
		var due []*fakeTimer
		for _, t := range f.timers {
			if t.active && !t.when.After(target) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			f.now = target
			f.compactLocked()
			f.mu.Unlock()
			return
		}
		sort.SliceStable(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
		t := due[0]
		t.active = false
		if t.when.After(f.now) {
			f.now = t.when
		}
		now := f.now
		f.mu.Unlock()
		if t.fn != nil {
			t.fn()
		} else {
			select {
			case t.c <- now:
			default:
			}
		}
	}
}

func (f *Fake) compactLocked() {
	kept := f.timers[:0]
	for _, t := range f.timers {
		if t.active {
			kept = append(kept, t)
		}
	}
	for i := len(kept); i < len(f.timers); i++ {
		f.timers[i] = nil
	}
	f.timers = kept
}

type fakeTimer struct {
	clock  *Fake
	fn     func()
	c      chan time.Time
	when   time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.active
	t.when = t.clock.now.Add(d)
	t.active = true
	found := false
	for _, x := range t.clock.timers {
		if x == t {
			found = true
			break
		}
	}
	if !found {
		t.clock.timers = append(t.clock.timers, t)
	}
	t.clock.notifyLocked()
	return was
}
