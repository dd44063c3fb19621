package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the parser as YAML and as JSON. It must
// never panic, and its result must be coherent: either a config whose every
// container can be hashed and rendered, or a *ValidationError with problems.
func FuzzLoad(f *testing.F) {
	seeds := []string{
		"",
		"containers:\n  hello:\n    image: ./app\n    defaultPort: 8080\n",
		oneContainer("    readyOn: [{path: ready}]\n"),
		oneContainer("    instanceType: {vcpu: 2, memoryMib: 4096}\n    labels: {a: b}\n"),
		"containers:\n  a: &x {image: ./app}\n  b:\n    <<: *x\n    env: {<<: {A: b}}\n",
		"containers:\n  a: {image: {registry: r}, sleepAfter: 99999999999999999999h}\n",
		`{"containers": {"a": {"image": "./app", "defaultPort": 1e400}}}`,
		"listen: [\n",
		"a: &a [*a]\n",
		aliasBomb(),
	}
	examples, _ := filepath.Glob(filepath.FromSlash("../../configs/*/lunorad.yaml"))
	for _, ex := range examples {
		if data, err := os.ReadFile(ex); err == nil {
			seeds = append(seeds, string(data))
		}
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		name := "lunorad.yaml"
		if asJSON {
			name = "lunorad.json"
		}
		cfg, _, err := loadBytes(data, filepath.Join(dir, name), LoadOptions{LookupEnv: noEnv})
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 || cfg != nil {
				t.Fatalf("error %T %v with config %v", err, err, cfg)
			}
			for _, p := range verr.Problems {
				if strings.TrimSpace(p.Message) == "" || p.Line < 0 {
					t.Fatalf("malformed problem %+v", p)
				}
			}
			return
		}
		if len(cfg.Names) != len(cfg.Containers) || !slices.IsSorted(cfg.Names) {
			t.Fatalf("Names %v do not match Containers", cfg.Names)
		}
		for _, n := range cfg.Names {
			c := cfg.Containers[n]
			if c == nil || c.Name != n || len(c.Hash()) != 64 {
				t.Fatalf("container %q: %+v", n, c)
			}
			for _, r := range c.ReadyOn {
				if !strings.HasPrefix(r.Path, "/") || r.Port < 1 || r.Status < 100 {
					t.Fatalf("readyOn %+v", r)
				}
			}
		}
		if _, err := cfg.EffectiveJSON(); err != nil {
			t.Fatal(err)
		}
	})
}
