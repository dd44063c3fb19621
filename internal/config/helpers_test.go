package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files (relative path -> content) under a fresh folder
// and returns the folder. A name ending in "/" creates a directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// noEnv is a LookupEnv that finds nothing, so tests never depend on the
// real environment.
func noEnv(string) (string, bool) { return "", false }

// loadFile writes content as name (with an ./app build context beside it)
// and loads it.
func loadFile(t *testing.T, name, content string) (*Config, []Warning, error) {
	t.Helper()
	dir := writeTree(t, map[string]string{name: content, "app/Dockerfile": "FROM scratch\n"})
	return Load(filepath.Join(dir, name), LoadOptions{LookupEnv: noEnv})
}

func loadYAML(t *testing.T, content string) (*Config, []Warning, error) {
	t.Helper()
	return loadFile(t, "lunorad.yaml", content)
}

// mustLoad fails the test unless content loads cleanly.
func mustLoad(t *testing.T, content string) (*Config, []Warning) {
	t.Helper()
	cfg, warnings, err := loadYAML(t, content)
	if err != nil {
		t.Fatalf("Load: unexpected error:\n%v", err)
	}
	return cfg, warnings
}

// problemsOf returns the problems of a *ValidationError, failing otherwise.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a *ValidationError, got %T: %v", err, err)
	}
	if len(verr.Problems) == 0 {
		t.Fatal("ValidationError without problems")
	}
	return verr.Problems
}

// oneContainer is a config with one container "box" built from ./app, and
// the given option lines (already indented by four spaces) after `image`.
// The first option line is line 4.
func oneContainer(options string) string {
	return "containers:\n  box:\n    image: ./app\n" + options
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
