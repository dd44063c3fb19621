package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// refProxy is bench/refproxy running as its own process: Go's bare
// httputil.ReverseProxy in front of a container, the floor lunorad's router
// is built on.
type refProxy struct {
	Base   string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *refProxy) Pid() int { return p.cmd.Process.Pid }

// startRefProxy runs the reference proxy on a free loopback port with
// GOMAXPROCS=2, as lunorad runs.
func startRefProxy(ctx context.Context, bin, upstream string) (*refProxy, error) {
	listen, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, listen, upstream)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the reference proxy: %w", err)
	}
	p := &refProxy{Base: "http://" + listen, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := waitListening(ctx, listen, p.exited); err != nil {
		p.stop()
		return nil, fmt.Errorf("reference proxy: %w", err)
	}
	return p, nil
}

// stop ends the reference proxy (our own child, by pid).
func (p *refProxy) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitListening waits until addr accepts connections, the process exits, or
// 10 s pass.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return errors.New("not listening within 10s")
		}
		select {
		case <-exited:
			return errors.New("exited at start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
