package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the examples under configs/")

// TestExamplesGolden loads every example under configs/ (configs/<name>/
// lunorad.yaml or .json) and compares its effective configuration and
// warnings with testdata/<name>.golden.json. Run with -update after a
// deliberate change and review the diff.
func TestExamplesGolden(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../configs/*/lunorad.yaml", "../../configs/*/lunorad.json"} {
		matches, err := filepath.Glob(filepath.FromSlash(pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matches...)
	}
	if len(files) == 0 {
		t.Fatal("no examples found under configs/")
	}
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file))
		t.Run(name, func(t *testing.T) {
			cfg, warnings, err := Load(file, LoadOptions{LookupEnv: noEnv})
			if err != nil {
				t.Fatalf("the example does not load:\n%v", err)
			}
			effective, err := cfg.EffectiveJSON()
			if err != nil {
				t.Fatal(err)
			}
			if warnings == nil {
				warnings = []Warning{}
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if err := enc.Encode(struct {
				Effective json.RawMessage `json:"effective"`
				Warnings  []Warning       `json:"warnings"`
			}{effective, warnings}); err != nil {
				t.Fatal(err)
			}
			// Absolute paths differ between machines.
			got := bytes.ReplaceAll(buf.Bytes(), []byte(cfg.Dir), []byte("$CONFIG_DIR"))

			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run: go test ./internal/config -run TestExamplesGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("effective config of %s differs from %s (run with -update if intended):\n%s",
					file, golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the first lines that differ, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want " + wl + "\n  got  " + gl + "\n")
			shown++
		}
	}
	return b.String()
}
