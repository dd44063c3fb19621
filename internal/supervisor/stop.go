package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// signals are the Linux signal numbers Stop accepts by name.
var signals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7,
	"SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
	"SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19,
	"SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
	"SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}

// parseSignal accepts "SIGTERM", "TERM", "sigterm" or "15" and returns the
// canonical name Docker's kill endpoint takes; "" means SIGTERM.
func parseSignal(s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return "SIGTERM", nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		for name, num := range signals {
			if num == n {
				return name, nil
			}
		}
		return "", fmt.Errorf("unknown signal number %d", n)
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if _, ok := signals[s]; !ok {
		return "", fmt.Errorf("unknown signal %q", s)
	}
	return s, nil
}

// Stop sends signal (default SIGTERM) to the container, waits up to grace
// (the default grace when <= 0) for it to exit, kills it with SIGKILL if it
// has not, and removes it. A container that is already gone counts as
// stopped. If ctx ends first, the container is still force-removed.
//
// ContainerKill is used rather than ContainerStop because engines below API
// 1.42 silently drop StopOptions.Signal.
func (d *Docker) Stop(ctx context.Context, containerID, signal string, grace time.Duration) error {
	sig, err := parseSignal(signal)
	if err != nil {
		return fmt.Errorf("stopping container %s: %w", shortID(containerID), err)
	}
	if grace <= 0 {
		grace = d.stopGrace
	}
	log := d.log.With(zap.String("id", shortID(containerID)))

	// Wait first, so an exit right after the signal cannot be missed. The
	// wait is a stream; its deadline only guards against a wedged engine.
	waitCtx, cancelWait := context.WithTimeout(ctx, grace+d.callTimeout)
	defer cancelWait()
	exited, waitErr := d.api.ContainerWait(waitCtx, containerID, container.WaitConditionNotRunning)

	kctx, cancel := d.callCtx(ctx)
	err = d.api.ContainerKill(kctx, containerID, sig)
	cancel()
	switch {
	case err == nil:
		if stopped := d.waitExit(ctx, exited, waitErr, grace, log); !stopped {
			kctx, cancel := d.callCtx(ctx)
			if err := d.api.ContainerKill(kctx, containerID, "SIGKILL"); err != nil && !gone(err) {
				log.Debug("SIGKILL failed; the forced remove kills it instead", zap.Error(err))
			}
			cancel()
		}
	case cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		// "is not running": nothing to signal, only to remove.
	default:
		log.Warn("could not signal the container; removing it by force", zap.String("signal", sig), zap.Error(err))
	}

	rctx, cancel := d.cleanupCtx(ctx)
	defer cancel()
	if err := d.removeContainer(rctx, containerID); err != nil {
		return fmt.Errorf("stopping container %s: %w", shortID(containerID), err)
	}
	return ctx.Err()
}

// waitExit reports whether the container stopped within grace. It returns
// false when grace passed or ctx ended. If the wait itself fails, the app
// still gets its whole grace before the kill.
func (d *Docker) waitExit(ctx context.Context, exited <-chan container.WaitResponse, waitErr <-chan error, grace time.Duration, log *zap.Logger) bool {
	timer := d.clock.NewTimer(grace)
	defer timer.Stop()
	for {
		select {
		case res := <-exited:
			log.Debug("container exited after the stop signal", zap.Int64("exit_code", res.StatusCode))
			return true
		case err := <-waitErr:
			if gone(err) {
				return true
			}
			log.Debug("waiting for the container failed; killing it after the grace period", zap.Error(err))
			waitErr = nil // a nil channel is never ready: wait for the timer or ctx
		case <-timer.C():
			log.Info("container did not exit within the grace period; killing it", zap.Duration("grace", grace))
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Remove kills (SIGKILL) and removes the container at once; a container that
// is already gone counts as removed.
func (d *Docker) Remove(ctx context.Context, containerID string) error {
	rctx, cancel := d.callCtx(ctx)
	defer cancel()
	if err := d.removeContainer(rctx, containerID); err != nil {
		return fmt.Errorf("removing container %s: %w", shortID(containerID), err)
	}
	return nil
}

// removeContainer force-removes a container with its anonymous volumes and
// returns once it is gone. NotFound counts as done. Conflict means another
// removal is in progress (a Destroy racing a Stop, say): it is waited for,
// so that no caller reports a container removed while it still exists and
// still holds its name.
func (d *Docker) removeContainer(ctx context.Context, id string) error {
	err := d.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return d.waitRemoved(ctx, id)
	default:
		return err
	}
}

// waitRemoved waits until a removal already in progress has removed id.
func (d *Docker) waitRemoved(ctx context.Context, id string) error {
	removed, waitErr := d.api.ContainerWait(ctx, id, container.WaitConditionRemoved)
	select {
	case <-removed:
	case err := <-waitErr:
		if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("waiting for the removal already in progress: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("waiting for the removal already in progress: %w", ctx.Err())
	}
	// The wait also ends when that removal failed: check the container is gone.
	_, err := d.api.ContainerInspect(ctx, id)
	switch {
	case cerrdefs.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("checking the removal already in progress: %w", err)
	default:
		return errors.New("another removal of the container failed; it still exists")
	}
}

// gone reports errors that mean the container no longer needs handling.
func gone(err error) bool {
	return cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err)
}

// RemoveAllOwned force-removes every container of this config, running or
// not, in parallel, then this config's network: the shutdown and cleanup
// path. It reports every failure.
func (d *Docker) RemoveAllOwned(ctx context.Context) error {
	lctx, cancel := d.callCtx(ctx)
	list, err := d.api.ContainerList(lctx, container.ListOptions{All: true, Filters: ownedFilter(d.configID)})
	cancel()
	if err != nil {
		return fmt.Errorf("listing owned containers: %w", err)
	}
	errs := make([]error, len(list))
	var g errgroup.Group
	g.SetLimit(8)
	for i, c := range list {
		g.Go(func() error {
			rctx, cancel := d.callCtx(ctx)
			defer cancel()
			if err := d.removeContainer(rctx, c.ID); err != nil {
				errs[i] = fmt.Errorf("removing container %s: %w", shortID(c.ID), err)
			}
			return nil // keep going: every container gets its chance
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return err // the network still has containers attached: leave it
	}
	d.log.Debug("removed owned containers", zap.Int("count", len(list)))
	return d.RemoveNetwork(ctx)
}
