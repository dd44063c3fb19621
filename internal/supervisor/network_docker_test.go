package supervisor

import (
	"context"
	"maps"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"

	"github.com/lunora/lunorad/internal/lifecycle"
)

func TestAttachOnTheRealEngine(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	// Its own config; container names keep only 8 characters of the config
	// id, so the instance names must differ from the other tests' too.
	configID := suite.configID + "-net"
	d := newTestDocker(t, Options{ConfigID: configID})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = d.RemoveAllOwned(context.Background()) }) // also when a check fails

	a := runTestServer(t, d, lifecycle.RunSpec{Instance: "net-a"})
	insp, err := suite.cli.ContainerInspect(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if nets := insp.NetworkSettings.Networks; len(nets) != 1 || nets["bridge"] == nil || a.Direct != nil {
		t.Fatalf("after Run: networks = %v Direct = %v, want only the default bridge", nets, a.Direct)
	}

	began := time.Now()
	direct, err := d.Attach(ctx, a.ID, a.Ports)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Logf("first Attach (network create + connect + inspect + probe) took %s", took)
	insp, err = suite.cli.ContainerInspect(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	ep := insp.NetworkSettings.Networks[networkName(configID)]
	if ep == nil || ep.IPAddress == "" || insp.NetworkSettings.Networks["bridge"] == nil {
		t.Fatalf("after Attach: networks = %+v, want the default bridge and %s", insp.NetworkSettings.Networks, networkName(configID))
	}
	if want := ep.IPAddress + ":8080"; direct[8080] != want || len(direct) != 1 {
		t.Fatalf("Attach = %v, want 8080 → %s", direct, want)
	}
	net1, err := suite.cli.NetworkInspect(ctx, networkName(configID), network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ownedNetwork(net1, configID) || !net1.Internal {
		t.Errorf("network = %s driver %s labels %v internal %v, want our internal bridge", net1.Name, net1.Driver, net1.Labels, net1.Internal)
	}
	waitHTTP(t, direct[8080], "/live")
	waitHTTP(t, a.Ports[8080], "/live") // the published port stays, as the fallback

	began = time.Now()
	again, err := d.Attach(ctx, a.ID, a.Ports)
	if err != nil || !maps.Equal(again, direct) {
		t.Errorf("second Attach = %v, %v; want %v again", again, err, direct)
	}
	t.Logf("second Attach (already connected) took %s", time.Since(began))

	// A restarted daemon (a new Docker) lists the container without its
	// direct address until one of its Attaches has probed the route (the
	// lifecycle attaches adopted runs in the background), and reuses the
	// network rather than failing on it.
	d2 := newTestDocker(t, Options{ConfigID: configID})
	list, err := d2.ListOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Direct != nil {
		t.Errorf("ListOwned before any Attach = %+v, want a without Direct", list)
	}
	b := runTestServer(t, d2, lifecycle.RunSpec{Instance: "net-b"})
	began = time.Now()
	bDirect, err := d2.Attach(ctx, b.ID, b.Ports)
	if err != nil {
		t.Fatalf("Attach b: %v", err)
	}
	t.Logf("Attach on an existing network took %s", time.Since(began))
	waitHTTP(t, bDirect[8080], "/live")
	list, err = d2.ListOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.ID == a.ID && r.Direct[8080] != direct[8080] {
			t.Errorf("ListOwned after an Attach: a's Direct = %v, want %v", r.Direct, direct)
		}
	}
	if insp, err := suite.cli.ContainerInspect(ctx, b.ID); err != nil || insp.NetworkSettings.Networks[networkName(configID)].NetworkID != net1.ID {
		t.Errorf("b is not on the reused network %s: %v", shortID(net1.ID), err)
	}

	if err := d.RemoveAllOwned(ctx); err != nil {
		t.Fatalf("RemoveAllOwned: %v", err)
	}
	if _, err := suite.cli.NetworkInspect(ctx, net1.ID, network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network after RemoveAllOwned: %v, want not found", err)
	}
}
