package events

import "testing"

func TestBusDeliversAndDropsForSlowSubscriber(t *testing.T) {
	var b Bus
	fast := b.Subscribe(4, false)
	slow := b.Subscribe(1, false)
	defer fast.Close()
	defer slow.Close()
	for i := 0; i < 3; i++ {
		b.Publish(New("c", "i", Start, LevelInfo, "", int64(i)))
	}
	for i := 0; i < 3; i++ {
		if e := <-fast.C; e.TS != int64(i) || e.Type != "container" || e.Source != "lunora" {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
	if e := <-slow.C; e.TS != 0 {
		t.Fatalf("slow got %+v, want the first event", e)
	}
	select {
	case e := <-slow.C:
		t.Fatalf("slow subscriber should have dropped, got %+v", e)
	default:
	}
}

func TestSubscribeReplaysRecent(t *testing.T) {
	var b Bus
	b.Publish(New("c", "a", Start, LevelInfo, "", 1))
	b.Publish(New("c", "b", Stop, LevelInfo, "", 2))
	s := b.Subscribe(8, true)
	defer s.Close()
	if e := <-s.C; e.Instance != "a" {
		t.Fatalf("first replayed = %+v", e)
	}
	if e := <-s.C; e.Instance != "b" {
		t.Fatalf("second replayed = %+v", e)
	}
}
