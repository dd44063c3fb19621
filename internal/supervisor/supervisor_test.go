package supervisor

import (
	"context"
	"errors"
	"testing"
)

func TestNewDockerChecksTheEngine(t *testing.T) {
	if _, err := newDocker(context.Background(), &fakeEngine{}, Options{}); err == nil {
		t.Error("a missing ConfigID must be refused")
	}
	_, err := newDocker(context.Background(), &fakeEngine{pingErr: errors.New("connection refused")}, Options{ConfigID: "c"})
	var ue *EngineUnreachableError
	if !errors.As(err, &ue) || ue.Host != "unix:///fake.sock" {
		t.Errorf("ping failure: err = %v, want *EngineUnreachableError for the client's host", err)
	}
	d, err := newDocker(context.Background(), &fakeEngine{ncpu: 3}, Options{ConfigID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, api := d.Engine(); v != "20.10-fake" || api != "1.41" || d.ncpu != 3 {
		t.Errorf("Engine() = %q, %q, ncpu %d", v, api, d.ncpu)
	}
	if d.stopGrace != DefaultStopGrace || d.callTimeout != defaultCallTimeout {
		t.Errorf("defaults not applied: grace %v, call timeout %v", d.stopGrace, d.callTimeout)
	}
}
