package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/lifecycle"
)

// publishHostIP is where every published port binds: loopback only, so the
// containers are reachable from this machine and nowhere else.
const publishHostIP = "127.0.0.1"

// hostGateway lets the container call the local Worker back
// (host.docker.internal resolves to docker0's gateway, the host).
const hostGateway = "host.docker.internal:host-gateway"

// Run creates and starts the container for spec and reads back the host port
// of every published port: spec.Ports plus the ports the image EXPOSEs. It
// always runs on the default bridge (see Attach for lunorad's network). A
// leftover container of this config with the same name (same container and
// instance) is removed and the create retried once. On any error after the
// create, the container is force-removed before returning.
func (d *Docker) Run(ctx context.Context, spec lifecycle.RunSpec) (lifecycle.Running, error) {
	if spec.Container == "" || spec.Image == "" {
		return lifecycle.Running{}, errors.New("supervisor: RunSpec needs Container and Image")
	}
	log := d.log.With(zap.String("container", spec.Container), zap.String("instance", spec.Instance))

	ports, err := d.publishedPorts(ctx, spec)
	if err != nil {
		return lifecycle.Running{}, err
	}
	cfg, hostCfg := d.containerConfig(spec, ports, log)
	name := containerName(d.configID, spec.Container, spec.Instance)

	id, err := d.create(ctx, cfg, hostCfg, name, log)
	if err != nil {
		return lifecycle.Running{}, err
	}
	running, err := d.startAndInspect(ctx, id, ports)
	if err != nil {
		rctx, cancel := d.cleanupCtx(ctx)
		if rmErr := d.removeContainer(rctx, id); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("removing the failed container: %w", rmErr))
		}
		cancel()
		return lifecycle.Running{}, err
	}
	log.Debug("container running", zap.String("id", running.ID), zap.Any("ports", running.Ports))
	return running, nil
}

// publishedPorts is the sorted union of spec.Ports and the image's EXPOSEd
// TCP ports. Publishing only works for exposed ports (the engine silently
// drops a binding for any other), so every one of them is exposed too.
func (d *Docker) publishedPorts(ctx context.Context, spec lifecycle.RunSpec) ([]int, error) {
	set := map[int]bool{}
	for _, p := range spec.Ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("supervisor: invalid port %d for container %q", p, spec.Container)
		}
		set[p] = true
	}
	ictx, cancel := d.callCtx(ctx)
	insp, err := d.api.ImageInspect(ictx, spec.Image)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("inspecting image %s: %w", spec.Image, err)
	}
	if insp.Config != nil {
		for p := range insp.Config.ExposedPorts {
			port := nat.Port(p)
			if port.Proto() == "tcp" {
				if n := port.Int(); n > 0 {
					set[n] = true
				}
			}
		}
	}
	ports := make([]int, 0, len(set))
	for p := range set {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	return ports, nil
}

// containerConfig builds the create request for spec.
func (d *Docker) containerConfig(spec lifecycle.RunSpec, ports []int, log *zap.Logger) (*container.Config, *container.HostConfig) {
	labels, dropped := containerLabels(d.configID, spec.Container, spec.Instance, spec.ConfigHash, spec.Generation, spec.Labels)
	if len(dropped) > 0 {
		log.Warn("ignoring user labels in lunorad's reserved namespace", zap.Strings("labels", dropped))
	}
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range ports {
		port := nat.Port(strconv.Itoa(p) + "/tcp")
		exposed[port] = struct{}{}
		bindings[port] = []nat.PortBinding{{HostIP: publishHostIP, HostPort: ""}} // "": the engine picks a free port
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Env:          sortedEnv(spec.Env),
		Labels:       labels,
		ExposedPorts: exposed,
	}
	if spec.Entrypoint != nil {
		cfg.Entrypoint = spec.Entrypoint
	}
	hostCfg := &container.HostConfig{
		PortBindings: bindings,
		ExtraHosts:   []string{hostGateway},
		AutoRemove:   false, // removed explicitly, so an exit code can still be read
	}
	if d.limitsEnabled {
		hostCfg.Resources = d.resources(spec, log)
	}
	return cfg, hostCfg
}

// resources converts instanceType limits into what this engine accepts.
func (d *Docker) resources(spec lifecycle.RunSpec, log *zap.Logger) container.Resources {
	var r container.Resources
	if spec.NanoCPUs > 0 {
		r.NanoCPUs = max(spec.NanoCPUs, minNanoCPUs)
		// The engine refuses more CPUs than it has ("Range of CPUs is from
		// 0.01 to 2.00"), while instance types go up to 4 vCPU.
		if limit := int64(d.ncpu) * 1_000_000_000; d.ncpu > 0 && r.NanoCPUs > limit {
			d.clampWarn.Do(func() {
				log.Warn("instanceType asks for more CPUs than the Docker Engine has; clamping",
					zap.Float64("requested_vcpu", float64(spec.NanoCPUs)/1e9), zap.Int("engine_cpus", d.ncpu))
			})
			r.NanoCPUs = limit
		}
	}
	if spec.MemoryBytes > 0 {
		r.Memory = max(spec.MemoryBytes, minMemoryBytes)
		r.MemorySwap = r.Memory // Memory alone would allow as much again in swap
	}
	return r
}

// create creates the container; on a name conflict with a leftover container
// of this config it removes that one and retries once. A conflicting
// container that is not ours is never touched.
func (d *Docker) create(ctx context.Context, cfg *container.Config, hostCfg *container.HostConfig, name string, log *zap.Logger) (string, error) {
	for attempt := 0; ; attempt++ {
		cctx, cancel := d.callCtx(ctx)
		resp, err := d.api.ContainerCreate(cctx, cfg, hostCfg, nil, nil, name)
		cancel()
		if err == nil {
			for _, w := range resp.Warnings {
				log.Warn("Docker Engine warning on create", zap.String("warning", w))
			}
			return resp.ID, nil
		}
		if !cerrdefs.IsConflict(err) || attempt > 0 {
			return "", fmt.Errorf("creating container %s: %w", name, err)
		}
		ictx, cancel := d.callCtx(ctx)
		existing, ierr := d.api.ContainerInspect(ictx, name)
		cancel()
		if ierr != nil {
			return "", fmt.Errorf("creating container %s: %w (and inspecting the existing one: %w)", name, err, ierr)
		}
		if existing.Config == nil || !isOwned(existing.Config.Labels, d.configID) {
			return "", fmt.Errorf("creating container %s: the name is taken by a container lunorad does not own (%s); remove it or rename it: %w",
				name, shortID(existing.ID), err)
		}
		log.Info("removing a leftover container with the same name", zap.String("id", shortID(existing.ID)))
		rctx, cancel := d.callCtx(ctx)
		rerr := d.removeContainer(rctx, existing.ID)
		cancel()
		if rerr != nil {
			return "", fmt.Errorf("creating container %s: removing the leftover container: %w", name, rerr)
		}
	}
}

// startAndInspect starts the container and reads back its ports.
func (d *Docker) startAndInspect(ctx context.Context, id string, ports []int) (lifecycle.Running, error) {
	sctx, cancel := d.callCtx(ctx)
	err := d.api.ContainerStart(sctx, id, container.StartOptions{})
	cancel()
	if err != nil {
		return lifecycle.Running{}, fmt.Errorf("starting container %s: %w", shortID(id), err)
	}
	ictx, cancel := d.callCtx(ctx)
	insp, err := d.api.ContainerInspect(ictx, id)
	cancel()
	if err != nil {
		return lifecycle.Running{}, fmt.Errorf("inspecting container %s: %w", shortID(id), err)
	}
	running := runningFromInspect(insp)
	if insp.State != nil && (insp.State.Status == container.StateExited || insp.State.Status == container.StateDead) {
		// The app died at once: an exit for lifecycle's crash handling,
		// not a port the engine failed to publish.
		return lifecycle.Running{}, &lifecycle.RunExitedError{ContainerID: id, ExitCode: insp.State.ExitCode, OOMKilled: insp.State.OOMKilled}
	}
	for _, p := range ports {
		if _, ok := running.Ports[p]; !ok {
			return lifecycle.Running{}, fmt.Errorf("container %s: port %d/tcp was not published on %s (is the container still running?)", shortID(id), p, publishHostIP)
		}
	}
	return running, nil
}

// runningFromInspect maps an inspect result, ports included; a port whose
// host port is empty is left out.
func runningFromInspect(insp container.InspectResponse) lifecycle.Running {
	r := lifecycle.Running{ID: insp.ID, Name: strings.TrimPrefix(insp.Name, "/"), Ports: map[int]string{}}
	if insp.Config != nil {
		r.Container, r.Instance, r.ConfigHash, r.Generation = ownerLabels(insp.Config.Labels)
	}
	r.Created, _ = time.Parse(time.RFC3339Nano, insp.Created)
	if insp.State != nil {
		r.Running = insp.State.Running
		r.ExitCode = insp.State.ExitCode
		r.StartedAt, _ = time.Parse(time.RFC3339Nano, insp.State.StartedAt)
	}
	if insp.NetworkSettings != nil {
		for port, bindings := range insp.NetworkSettings.Ports {
			if port.Proto() != "tcp" {
				continue
			}
			for _, b := range bindings {
				if b.HostIP == publishHostIP && b.HostPort != "" {
					r.Ports[port.Int()] = publishHostIP + ":" + b.HostPort
					break
				}
			}
		}
	}
	return r
}

// sortedEnv renders env as sorted "K=V" entries (stable create requests).
func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// shortID is the 12-character form Docker prints.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
