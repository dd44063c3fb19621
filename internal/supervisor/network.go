package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"go.uber.org/zap"
)

// Direct dial: once a container is ready, lunorad also connects it to a
// bridge network it creates itself and, when the host can route to that
// network (Linux), proxies to the container's address on it instead of the
// published 127.0.0.1 port. That skips docker-proxy, a userland copy proxy
// that would be a second hop on every request. Containers are still created
// on the default bridge: one created on a user-defined network starts
// 50-110 ms slower on Engine 20.10, while connecting a running one costs the
// cold start nothing. The network is internal (no gateway), so the
// container's outbound route stays on the default bridge; the host still
// reaches it, as host traffic is not forwarded. The published ports stay:
// users see them and they are the fallback where the network is not routable
// (Docker Desktop, remote engine).

// networkPrefix starts the name of the bridge network of one config.
const networkPrefix = "lunorad-"

// The reachability probe decides once whether the host can route to the
// network: a routed bridge answers (SYN-ACK or RST) in well under a
// millisecond, an unrouted one never does. A bridge created a moment ago
// may drop the first SYN while its link comes up (the kernel would resend
// it only after a second), so the probe dials up to reachProbeAttempts
// times, reachProbeTimeout each, reachRetryPause apart, before it decides
// "no" for good. It runs only in the background attach, never on a path a
// request waits for: ListOwned (adoption) reports direct addresses only
// once a probe has said yes.
const (
	reachProbeTimeout  = 500 * time.Millisecond
	reachProbeAttempts = 5
)

// reachRetryPause separates two probe dials; tests shorten it.
var reachRetryPause = 100 * time.Millisecond

// networkName is the bridge network of configID's containers.
func networkName(configID string) string { return networkPrefix + configID }

// reachability is what the first probe found out about the network.
type reachability int

const (
	reachUnknown reachability = iota
	reachYes
	reachNo
)

// dialFunc dials one address; tests replace it to simulate routes.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Attach connects the running container containerID to lunorad's internal
// bridge network of this config ("lunorad-<ConfigID>", created or adopted on
// first use) and returns, for each port of published, the container's
// address there. A container already connected is fine: Attach is
// idempotent. When the host cannot route to the network the map is empty
// and the error nil (found out once, logged once); the published ports then
// stay the only way in. Containers are always created on the default
// bridge, and nothing but Attach creates the network or probes it: once an
// Attach has found the route, ListOwned also reports the address of
// containers already connected (never at adoption, which comes before any
// Attach), and a Docker never asked to Attach (lunorad up --direct=false,
// lunorad down) creates no network and reports no Running.Direct.
func (d *Docker) Attach(ctx context.Context, containerID string, published map[int]string) (map[int]string, error) {
	if len(published) == 0 {
		return nil, nil
	}
	netID, err := d.network(ctx)
	if err != nil {
		return nil, err
	}
	cerr := d.connect(ctx, netID, containerID)
	if cerr != nil && cerrdefs.IsNotFound(cerr) {
		// The network may have been removed under us (docker network rm,
		// lunorad down from another shell): have it again, once. A gone
		// container fails the second connect the same way.
		d.forgetNetwork(netID)
		if netID, err = d.network(ctx); err != nil {
			return nil, err
		}
		cerr = d.connect(ctx, netID, containerID)
	}
	ictx, cancel := d.callCtx(ctx)
	insp, err := d.api.ContainerInspect(ictx, containerID)
	cancel()
	if err != nil {
		if cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("inspecting container %s after connecting it to %s: %w", shortID(containerID), networkName(d.configID), err)
	}
	if cerr != nil && !onNetwork(insp, d.configID) {
		return nil, cerr
	}
	// A connect error with the container on the network is "already
	// connected" (a second Attach, or a race with one): success.
	return d.directAddrs(ctx, insp, published), nil
}

// connect connects containerID to the network netID under its own deadline.
func (d *Docker) connect(ctx context.Context, netID, containerID string) error {
	cctx, cancel := d.callCtx(ctx)
	defer cancel()
	if err := d.api.NetworkConnect(cctx, netID, containerID, &network.EndpointSettings{}); err != nil {
		return fmt.Errorf("connecting container %s to network %s: %w", shortID(containerID), networkName(d.configID), err)
	}
	return nil
}

// onNetwork reports whether insp shows an address on configID's network.
func onNetwork(insp container.InspectResponse, configID string) bool {
	if insp.NetworkSettings == nil {
		return false
	}
	ep := insp.NetworkSettings.Networks[networkName(configID)]
	return ep != nil && ep.IPAddress != ""
}

// network returns the id of our network, created or adopted on first use.
// A failure to have it is remembered and returned again without retrying,
// so a broken network setup costs one engine round trip, not one per
// container.
func (d *Docker) network(ctx context.Context) (string, error) {
	// netMu is held across the create on purpose: concurrent first Attaches
	// wait for the one create instead of racing to create the same network.
	d.netMu.Lock()
	defer d.netMu.Unlock()
	if d.netErr != nil {
		return "", d.netErr
	}
	if d.netID != "" {
		return d.netID, nil
	}
	// Detached: a caller that gives up must not leave the decision to a
	// cancelled context.
	nctx, cancel := d.cleanupCtx(ctx)
	defer cancel()
	id, err := d.ensureNetwork(nctx)
	if err != nil {
		d.netErr = err
		return "", err
	}
	d.netID = id
	return id, nil
}

// ensureNetwork creates the network, or adopts an existing one carrying our
// labels (a daemon killed with -9 leaves it behind).
func (d *Docker) ensureNetwork(ctx context.Context) (string, error) {
	name := networkName(d.configID)
	resp, err := d.api.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		// No gateway: the container's default route can only ever be the
		// default bridge's, and no traffic leaves through this network.
		Internal: true,
		Labels:   configLabels(d.configID),
	})
	if err == nil {
		if resp.Warning != "" {
			d.log.Warn("Docker Engine warning on network create", zap.String("warning", resp.Warning))
		}
		d.log.Info("created lunorad's bridge network", zap.String("network", name), zap.String("id", shortID(resp.ID)))
		return resp.ID, nil
	}
	// API 1.41 sends CheckDuplicate: a name clash is a conflict error.
	if !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating network %s: %w", name, err)
	}
	existing, ierr := d.api.NetworkInspect(ctx, name, network.InspectOptions{})
	if ierr != nil {
		return "", fmt.Errorf("creating network %s: %w (and inspecting the existing one: %w)", name, err, ierr)
	}
	if !ownedNetwork(existing, d.configID) {
		return "", fmt.Errorf("network %s exists but lunorad does not own it (%s); remove or rename it", name, shortID(existing.ID))
	}
	d.log.Info("reusing lunorad's bridge network", zap.String("network", name), zap.String("id", shortID(existing.ID)))
	return existing.ID, nil
}

// ownedNetwork reports whether n carries configID's ownership labels.
func ownedNetwork(n network.Inspect, configID string) bool {
	return hasConfigLabels(n.Labels, configID) && n.Driver == "bridge"
}

// forgetNetwork drops the cached network id netID, so the next Attach
// creates the network again (it was removed under us). A concurrent Attach
// that already replaced it keeps its newer id.
func (d *Docker) forgetNetwork(netID string) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	if d.netID == netID {
		d.netID = ""
	}
}

// RemoveNetwork removes this config's bridge network if it exists and is
// ours. Call it after the containers are gone: the engine refuses to remove
// a network with containers still attached.
func (d *Docker) RemoveNetwork(ctx context.Context) error {
	name := networkName(d.configID)
	// netMu keeps a concurrent first Attach from using a network being removed.
	d.netMu.Lock()
	defer d.netMu.Unlock()
	ictx, cancel := d.callCtx(ctx)
	n, err := d.api.NetworkInspect(ictx, name, network.InspectOptions{})
	cancel()
	if cerrdefs.IsNotFound(err) {
		d.netID = ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspecting network %s: %w", name, err)
	}
	if !ownedNetwork(n, d.configID) {
		return nil // not ours: never touched
	}
	rctx, cancel := d.callCtx(ctx)
	err = d.api.NetworkRemove(rctx, n.ID)
	cancel()
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing network %s: %w", name, err)
	}
	d.netID = ""
	d.log.Debug("removed lunorad's bridge network", zap.String("network", name))
	return nil
}

// routeKnown reports whether a probe has found that the host routes to
// the network (an answer that never changes once given). Only Attach can
// make it true: ListOwned looks for direct addresses only once it is.
func (d *Docker) routeKnown() bool { return reachability(d.reach.Load()) == reachYes }

// directAddrs maps each published port of a running container to its
// address on our network, or returns nil when that address is not (known to
// be) reachable from the host. The first call that has an address decides
// reachability for the lifetime of d.
func (d *Docker) directAddrs(ctx context.Context, insp container.InspectResponse, published map[int]string) map[int]string {
	if len(published) == 0 || insp.NetworkSettings == nil {
		return nil
	}
	if !onNetwork(insp, d.configID) {
		return nil
	}
	ep := insp.NetworkSettings.Networks[networkName(d.configID)]
	direct := make(map[int]string, len(published))
	for port := range published {
		direct[port] = net.JoinHostPort(ep.IPAddress, strconv.Itoa(port))
	}
	for _, addr := range direct {
		if !d.reachable(ctx, addr) {
			return nil
		}
		break // one address answers for the whole network
	}
	return direct
}

// reachable reports whether the host routes to the network, probing addr the
// first time. Success or "connection refused" (nothing listens yet) means a
// route exists; a timeout or an unreachable host or network means it does not.
func (d *Docker) reachable(ctx context.Context, addr string) bool {
	// reachMu is held across the probe so that only one runs, once per
	// Docker (about 3 s at most, where there is no route).
	d.reachMu.Lock()
	defer d.reachMu.Unlock()
	switch reachability(d.reach.Load()) {
	case reachYes:
		return true
	case reachNo:
		return false
	}
	var err error
	for attempt := range reachProbeAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return false // undecided: the next attach probes again
			case <-time.After(reachRetryPause):
			}
		}
		if err = d.dialProbe(ctx, addr); err == nil {
			d.reach.Store(int32(reachYes))
			d.log.Debug("dialing containers on lunorad's network directly", zap.String("probed", addr), zap.Int("attempt", attempt+1))
			return true
		}
	}
	d.reach.Store(int32(reachNo))
	d.log.Info("the host cannot reach containers on their network address; proxying through their published ports",
		zap.String("probed", addr), zap.Error(err))
	return false
}

// dialProbe dials addr once: nil means a route exists (a connection, or
// "connection refused" because nothing listens there yet).
func (d *Docker) dialProbe(ctx context.Context, addr string) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reachProbeTimeout)
	defer cancel()
	conn, err := d.dial(pctx, "tcp", addr)
	switch {
	case err == nil:
		_ = conn.Close()
		return nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil
	}
	return err
}
