package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

const schemaPath = "../../configs/lunorad.schema.json"

// TestSchemaListsExactlyTheAcceptedKeys keeps configs/lunorad.schema.json
// and the parser in step: every object in the schema must list exactly the
// keys the parser accepts there, and refuse the others.
func TestSchemaListsExactlyTheAcceptedKeys(t *testing.T) {
	data, err := os.ReadFile(filepath.FromSlash(schemaPath))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("the schema is not valid JSON: %v", err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", schema["$schema"])
	}
	container := dig(t, schema, "$defs", "container")
	image := dig(t, container, "properties", "image")
	instanceType := dig(t, container, "properties", "instanceType")
	objects := []struct {
		name string
		obj  map[string]any
		want []string
	}{
		{"top level", schema, topLevelKeys},
		{"container", container, containerKeys},
		{"image { registry }", oneOf(t, image, 1), []string{"registry"}},
		{"image { build }", oneOf(t, image, 2), []string{"build"}},
		{"rollout", dig(t, container, "properties", "rollout"), rolloutKeys},
		{"instanceType", oneOf(t, instanceType, 2), instanceTypeKeys},
		{"readyOn item", dig(t, container, "properties", "readyOn", "items"), readyOnKeys},
		{"backups", dig(t, container, "properties", "backups"), backupsKeys},
	}
	var imageKeys []string
	for _, o := range objects {
		props, ok := o.obj["properties"].(map[string]any)
		if !ok {
			t.Errorf("%s: no properties", o.name)
			continue
		}
		got := keysOf(props)
		if o.name == "image { registry }" || o.name == "image { build }" {
			imageKeys = append(imageKeys, got...)
			continue
		}
		if want := sorted(o.want); !slices.Equal(got, want) {
			t.Errorf("%s: schema lists %v, parser accepts %v", o.name, got, want)
		}
		if o.obj["additionalProperties"] != false {
			t.Errorf("%s: the schema must set additionalProperties: false, as the parser refuses unknown keys", o.name)
		}
	}
	if got, want := sorted(imageKeys), sorted(imageObjectKeys); !slices.Equal(got, want) {
		t.Errorf("image objects: schema lists %v, parser accepts %v", got, want)
	}
	if got := keysOf(dig(t, schema, "properties")); !slices.Contains(got, "containers") {
		t.Errorf("top level: %v", got)
	}
}

func dig(t *testing.T, m map[string]any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("schema: no object at %q in %v", k, keys)
		}
		m = next
	}
	return m
}

func oneOf(t *testing.T, m map[string]any, i int) map[string]any {
	t.Helper()
	alts, ok := m["oneOf"].([]any)
	if !ok || len(alts) <= i {
		t.Fatalf("schema: no oneOf[%d]", i)
	}
	alt, ok := alts[i].(map[string]any)
	if !ok {
		t.Fatalf("schema: oneOf[%d] is not an object", i)
	}
	return alt
}

func keysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}
