package clock

import (
	"context"
	"testing"
	"time"
)

func TestFakeFiresInOrderAndOnlyWhenDue(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	var got []int
	f.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	f.AfterFunc(1*time.Second, func() { got = append(got, 1) })
	stopped := f.AfterFunc(1500*time.Millisecond, func() { got = append(got, 15) })
	if !stopped.Stop() {
		t.Fatal("Stop of an armed timer returned false")
	}
	f.Advance(999 * time.Millisecond)
	if len(got) != 0 {
		t.Fatalf("fired early: %v", got)
	}
	f.Advance(time.Second)
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("after 1.999s got %v, want [1]", got)
	}
	f.Advance(time.Second)
	if len(got) != 2 || got[1] != 2 {
		t.Fatalf("after 2.999s got %v, want [1 2]", got)
	}
}

func TestSleepReturnsOnAdvanceAndOnCancel(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() { done <- Sleep(context.Background(), f, time.Minute) }()
	if err := f.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(ctx, f, time.Minute) }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Sleep after cancel = %v, want context.Canceled", err)
	}
}
