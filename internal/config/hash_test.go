package config

import (
	"reflect"
	"regexp"
	"testing"
	"time"
)

// hashMutations changes each field of a Container; hashed tells whether
// the change must change Hash. TestHashCoversEveryField fails when a field
// is added to Container without a decision here.
var hashMutations = map[string]struct {
	hashed bool
	mutate func(c *Container)
}{
	"Name":             {true, func(c *Container) { c.Name = "other" }},
	"Image":            {true, func(c *Container) { c.Image.DockerfilePath += ".dev" }},
	"DefaultPort":      {true, func(c *Container) { c.DefaultPort = 9999 }},
	"RequiredPorts":    {true, func(c *Container) { c.RequiredPorts = append(c.RequiredPorts, 7070) }},
	"InstanceType":     {true, func(c *Container) { c.InstanceType.MemoryMiB *= 2 }},
	"MaxInstances":     {false, func(c *Container) { c.MaxInstances = 50 }},
	"SleepAfter":       {false, func(c *Container) { c.SleepAfter = time.Hour }},
	"HardTimeout":      {false, func(c *Container) { c.HardTimeout = time.Hour }},
	"Env":              {true, func(c *Container) { c.Env["NEW"] = "1" }},
	"Secrets":          {true, func(c *Container) { c.Secrets = append(c.Secrets, "NEW_SECRET") }},
	"SecretsStore":     {true, func(c *Container) { c.SecretsStore["S"] = "OTHER_BINDING" }},
	"BuildArgs":        {true, func(c *Container) { c.BuildArgs["V"] = "23" }},
	"Labels":           {true, func(c *Container) { c.Labels["team"] = "other" }},
	"Entrypoint":       {true, func(c *Container) { c.Entrypoint = []string{"/bin/other"} }},
	"EnableInternet":   {true, func(c *Container) { c.EnableInternet = !c.EnableInternet }},
	"AllowedHosts":     {true, func(c *Container) { c.AllowedHosts = append(c.AllowedHosts, "x.com") }},
	"DeniedHosts":      {true, func(c *Container) { c.DeniedHosts = nil }},
	"InterceptHTTPS":   {true, func(c *Container) { c.InterceptHTTPS = !c.InterceptHTTPS }},
	"ReadyOn":          {false, func(c *Container) { c.ReadyOn[0].Path = "/other"; c.ReadyOn[0].Status = 204 }},
	"PingEndpoint":     {false, func(c *Container) { c.PingEndpoint = "/healthz" }},
	"DisplayName":      {false, func(c *Container) { c.DisplayName = "renamed" }},
	"Rollout":          {false, func(c *Container) { c.Rollout.StepPercentage = 50 }},
	"SchedulingPolicy": {false, func(c *Container) { c.SchedulingPolicy = SchedulingDurableObject }},
	"Sandbox":          {false, func(c *Container) { c.Sandbox = true }},
	"Backups":          {false, func(c *Container) { c.Backups = &Backups{Bucket: "b"} }},
	"Line":             {false, func(c *Container) { c.Line = 99 }},
}

const hashFixture = `containers:
  box:
    image: ./app
    defaultPort: 8080
    requiredPorts: [8080]
    env: {A: "1", B: "2"}
    secrets: [TOKEN]
    secretsStore: {S: BINDING}
    buildArgs: {V: "22"}
    labels: {team: media}
    entrypoint: [/bin/app]
    allowedHosts: [a.com]
    deniedHosts: [b.com]
    readyOn: [{path: /ready}]
`

func TestHashCoversEveryField(t *testing.T) {
	typ := reflect.TypeFor[Container]()
	for i := range typ.NumField() {
		if _, ok := hashMutations[typ.Field(i).Name]; !ok {
			t.Errorf("Container.%s: decide whether Hash covers it and add it to hashMutations", typ.Field(i).Name)
		}
	}
	for name, m := range hashMutations {
		t.Run(name, func(t *testing.T) {
			cfg, _ := mustLoad(t, hashFixture)
			c := cfg.Containers["box"]
			before := c.Hash()
			m.mutate(c)
			if changed := c.Hash() != before; changed != m.hashed {
				t.Errorf("changing %s changed the hash: %v, want %v", name, changed, m.hashed)
			}
		})
	}
}

func TestHashIsStableAndCanonical(t *testing.T) {
	a, _ := mustLoad(t, hashFixture)
	b, _ := mustLoad(t, hashFixture)
	ha, hb := a.Containers["box"].Hash(), b.Containers["box"].Hash()
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(ha) {
		t.Fatalf("Hash = %q, want sha256 hex", ha)
	}
	// b lives in another folder, so its image paths differ: a different hash.
	if ha == hb {
		t.Error("containers built from different folders hash the same")
	}
	c := a.Containers["box"]
	for range 20 { // map iteration order must not matter
		if c.Hash() != ha {
			t.Fatal("Hash is not stable across calls")
		}
	}
	// Same effective config written differently: key order, alias, a readyOn
	// port that is already published, an explicit default.
	dir := a.Dir
	reordered := `containers:
  box:
    labels: {team: media}
    env: {B: "2", A: "1"}
    image: app/
    buildArgs: {V: "22"}
    secretsStore: {S: BINDING}
    secrets: [TOKEN]
    entrypoint: [/bin/app]
    requiredPorts: [8080]
    defaultPort: 8080
    enableInternet: true
    deniedHosts: [b.com]
    allowedHosts: [a.com]
    readyOn: [{path: /ready, port: 8080, status: 204}]
    sleepAfter: 1h
`
	writeFile(t, dir+"/lunorad.yaml", reordered)
	again, _, err := Load(dir+"/lunorad.yaml", LoadOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Containers["box"].Hash(); got != ha {
		t.Errorf("equivalent config hashes differently: %s vs %s", got, ha)
	}
}

func TestConfigID(t *testing.T) {
	a := &Config{Path: "/srv/a/lunorad.yaml"}
	b := &Config{Path: "/srv/b/lunorad.yaml"}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(a.ID()) {
		t.Fatalf("ID = %q", a.ID())
	}
	if a.ID() != (&Config{Path: "/srv/a/lunorad.yaml"}).ID() || a.ID() == b.ID() {
		t.Error("want stable per path and distinct across paths")
	}
}
