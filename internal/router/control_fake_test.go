package router

import (
	"context"
	"sort"
	"sync"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// fakeControl records control-plane calls and answers from canned data.
type fakeControl struct {
	containers map[string]*config.Container
	// err, when set, is returned by every action.
	err error

	// mu guards everything that follows.
	mu        sync.Mutex
	calls     []string
	startOpts lifecycle.StartOptions
	signal    string
	infos     map[string][]lifecycle.InstanceInfo
}

func newFakeControl(containers map[string]*config.Container) *fakeControl {
	return &fakeControl{containers: containers, infos: map[string][]lifecycle.InstanceInfo{}}
}

func (f *fakeControl) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeControl) ContainerNames() []string {
	names := make([]string, 0, len(f.containers))
	for n := range f.containers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (f *fakeControl) Container(name string) (*config.Container, bool) {
	c, ok := f.containers[name]
	return c, ok
}

func (f *fakeControl) Start(_ context.Context, container, id string, opts lifecycle.StartOptions) error {
	f.record("start " + container + "/" + id)
	f.mu.Lock()
	f.startOpts = opts
	f.mu.Unlock()
	return f.err
}

func (f *fakeControl) Stop(_ context.Context, container, id string, signal string) error {
	f.record("stop " + container + "/" + id)
	f.mu.Lock()
	f.signal = signal
	f.mu.Unlock()
	return f.err
}

func (f *fakeControl) Destroy(_ context.Context, container, id string) error {
	f.record("destroy " + container + "/" + id)
	return f.err
}

func (f *fakeControl) State(container, id string) (lifecycle.State, error) {
	if _, ok := f.containers[container]; !ok {
		return lifecycle.State{}, &lifecycle.UnknownContainerError{Name: container}
	}
	if id == "crashed" {
		code := 137
		return lifecycle.State{Status: "stopped_with_code", LastChange: 1700000000000, ExitCode: &code}, nil
	}
	return lifecycle.State{Status: "healthy", LastChange: 1700000000000}, nil
}

func (f *fakeControl) RenewActivity(container, id string) error {
	f.record("renew " + container + "/" + id)
	return f.err
}

func (f *fakeControl) Instance(container, id string) (lifecycle.InstanceInfo, error) {
	st, err := f.State(container, id)
	if err != nil {
		return lifecycle.InstanceInfo{}, err
	}
	return lifecycle.InstanceInfo{Container: container, Instance: id, State: st, Generation: 3,
		Ports: map[int]string{8080: "127.0.0.1:40000"}, AllowedHosts: []string{}, DeniedHosts: []string{}}, nil
}

func (f *fakeControl) Instances(container string) ([]lifecycle.InstanceInfo, error) {
	if _, ok := f.containers[container]; !ok {
		return nil, &lifecycle.UnknownContainerError{Name: container}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.infos[container], nil
}

func (f *fakeControl) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
