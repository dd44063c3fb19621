package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	src := "# wrangler secrets\n" +
		"PLAIN=value\n" +
		"  SPACED  =  padded value  \n" +
		"export EXPORTED=yes\n" +
		"EMPTY=\n" +
		"COMMENTED=abc # a comment\n" +
		"HASH_CUT=abc#def\n" +
		"SINGLE2='keep # and \\n'\n" +
		"DOUBLE=\"line1\\nline2\\ttab \\\"q\\\" \\\\ \\x\"\n" +
		"BACKTICK=`a \"b\" 'c'`\n" +
		"MULTI=\"first\n" +
		"second\"\n" +
		"CRLF=yes\r\n" +
		"QUOTED_COMMENT=\"v\" # trailing comment\n" +
		"DOTTED.NAME-1=ok\n" +
		"PLAIN=overridden\n" +
		"exporter=not-an-export-prefix\n"
	got, err := parseDotenv(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PLAIN":          "overridden",
		"SPACED":         "padded value",
		"EXPORTED":       "yes",
		"EMPTY":          "",
		"COMMENTED":      "abc",
		"HASH_CUT":       "abc",
		"SINGLE2":        "keep # and \\n",
		"DOUBLE":         "line1\nline2\ttab \"q\" \\ \\x",
		"BACKTICK":       "a \"b\" 'c'",
		"MULTI":          "first\nsecond",
		"CRLF":           "yes",
		"QUOTED_COMMENT": "v",
		"DOTTED.NAME-1":  "ok",
		"exporter":       "not-an-export-prefix",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%#v\nwant:\n%#v", got, want)
	}
}

func TestParseDotenvErrorsNameTheLineNotTheValue(t *testing.T) {
	const secret = "s3cr3t-v4lue"
	tests := map[string]string{
		"no equals":           "OK=1\n" + secret + "\n",
		"bad name":            "OK=1\n" + "9" + "=" + secret + "\n",
		"unterminated":        "OK=1\nTOKEN=\"" + secret + "\nMORE=1\n",
		"text after quote":    "OK=1\nTOKEN='" + secret + "' " + secret + "\n",
		"adjacent quotes raw": "OK=1\nTOKEN='it''s " + secret + "'\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseDotenv(src)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), "line 2:") {
				t.Errorf("error %q does not name line 2", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks the value", err)
			}
		})
	}
}

func TestLoadDevVars(t *testing.T) {
	dir := t.TempDir()
	vars, err := LoadDevVars(dir)
	if err != nil || vars == nil || len(vars) != 0 {
		t.Fatalf("missing file: %v, %v; want an empty map and no error", vars, err)
	}
	writeFile(t, filepath.Join(dir, ".dev.vars"), "\uFEFFTOKEN=abc\n")
	vars, err = LoadDevVars(dir)
	if err != nil || !reflect.DeepEqual(vars, map[string]string{"TOKEN": "abc"}) {
		t.Fatalf("got %v, %v", vars, err)
	}
	writeFile(t, filepath.Join(dir, ".dev.vars"), "TOKEN\n")
	if _, err := LoadDevVars(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ".dev.vars")+": line 1") {
		t.Errorf("error %v should name the file and line", err)
	}
	if err := os.Remove(filepath.Join(dir, ".dev.vars")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, ".dev.vars"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDevVars(dir); err == nil {
		t.Error("a .dev.vars directory must be an error")
	}
}

func TestSecretSource(t *testing.T) {
	env := map[string]string{"FROM_ENV": "env-value", "BOTH": "env-loses"}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	devVars := map[string]string{"FROM_FILE": "file-value", "BOTH": "file-wins"}
	s := NewSecretSourceFrom(devVars, lookup)
	devVars["FROM_FILE"] = "changed after construction"

	for name, want := range map[string]string{"FROM_FILE": "file-value", "FROM_ENV": "env-value", "BOTH": "file-wins"} {
		if got, ok := s.Lookup(name); !ok || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := s.Lookup("NOWHERE"); ok {
		t.Error("Lookup(NOWHERE) found something")
	}

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%q", "%x"} {
		for _, v := range []any{s, *s} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, "value") || strings.Contains(out, "wins") {
				t.Errorf("%s of %T renders a secret: %s", verb, v, out)
			}
		}
	}
}

func TestNewSecretSourceReadsTheFolder(t *testing.T) {
	dir := writeTree(t, map[string]string{".dev.vars": "LUNORAD_TEST_ONLY_IN_FILE=1\n"})
	s, err := NewSecretSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.Lookup("LUNORAD_TEST_ONLY_IN_FILE"); !ok || v != "1" {
		t.Errorf("got %q, %v", v, ok)
	}
	t.Setenv("LUNORAD_TEST_FROM_ENV", "2")
	if v, ok := s.Lookup("LUNORAD_TEST_FROM_ENV"); !ok || v != "2" {
		t.Errorf("process environment: got %q, %v", v, ok)
	}
	writeFile(t, filepath.Join(dir, ".dev.vars"), "=x\n")
	if _, err := NewSecretSource(dir); err == nil {
		t.Error("want the parse error")
	}
}
