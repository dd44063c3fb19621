package config

import (
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Node helpers over yaml.v3's node tree. The tree comes from YAML or, for
// .json files, from jsonnode.go; both carry line numbers.

// maxAliasDepth bounds alias chains and nested merge keys, so a crafted file
// cannot send the walker into deep or endless recursion.
const maxAliasDepth = 32

// maxVisited bounds the mapping keys and list items the walker visits.
// Without aliases that is about the size of the file; aliases and merge keys
// can make a small file expand exponentially (a "billion laughs"), and this
// refuses such a file instead of hanging on it.
const maxVisited = 1 << 18

// spend counts n visited keys or items at node at, and reports false (with
// one problem) once the budget is exhausted.
func (l *loader) spend(n int, at *yaml.Node) bool {
	l.visited += n
	if l.visited <= maxVisited {
		return true
	}
	if !l.overBudget {
		l.overBudget = true
		l.problemf("", at, "the file expands to more than %d keys and list items through aliases and merge keys", maxVisited)
	}
	return false
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	return n
}

// entry is one key of a mapping. Key is the key's text; KeyNode gives its line.
type entry struct {
	Key     string
	KeyNode *yaml.Node
	Value   *yaml.Node
}

// isMapping and isSequence look through aliases.
func isMapping(n *yaml.Node) bool  { n = resolve(n); return n != nil && n.Kind == yaml.MappingNode }
func isSequence(n *yaml.Node) bool { n = resolve(n); return n != nil && n.Kind == yaml.SequenceNode }

// isNull reports a YAML null (`~`, `null`, or nothing after the colon).
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// stringValue returns the text of a string scalar.
func stringValue(n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", false
	}
	return n.Value, true
}

// boolValue returns the value of a boolean scalar.
func boolValue(n *yaml.Node) (bool, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, false
	}
	return b, true
}

// numberValue returns an integer or float scalar as a float64, the way a
// JavaScript config would see it (Lunora validates JS numbers), so 8080.0 is
// an integer and 1e400 is Infinity.
func numberValue(n *yaml.Node) (float64, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return 0, false
	}
	tag := n.ShortTag()
	if tag != "!!int" && tag != "!!float" {
		return 0, false
	}
	var v any
	if err := n.Decode(&v); err == nil {
		switch x := v.(type) {
		case int:
			return float64(x), true
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		case float64:
			return x, true
		}
	}
	// Out-of-range literals: yaml.v3 refuses them, JavaScript rounds them.
	f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// isInteger is JavaScript's Number.isInteger.
func isInteger(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0) && f == math.Trunc(f)
}

// jsNumber renders f the way JavaScript's String(number) does, so that
// "(got 1.5)" reads exactly as in @lunora/container's messages.
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0" // also -0, as in JavaScript
	}
	abs := math.Abs(f)
	if abs >= 1e21 || abs < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+21, 1e-07
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[:1]
		digits := strings.TrimLeft(exp[1:], "0")
		return mant + "e" + sign + digits
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// describe renders a value for a "(got X)" message: numbers, booleans and
// null as JavaScript's String() would, strings quoted (so that a quoted
// "8080" is visibly a string), collections by their kind.
func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if f, ok := numberValue(n); ok {
			return jsNumber(f)
		}
		if b, ok := boolValue(n); ok {
			return strconv.FormatBool(b)
		}
		if isNull(n) {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported value"
}

// scalarText is the text of any scalar (a string, or a number or boolean as
// JavaScript would coerce it), for rules that coerce like Lunora's regex tests.
func scalarText(n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		return "", false
	}
	if s, ok := stringValue(n); ok {
		return s, true
	}
	if f, ok := numberValue(n); ok {
		return jsNumber(f), true
	}
	if b, ok := boolValue(n); ok {
		return strconv.FormatBool(b), true
	}
	return n.Value, true
}

// mapEntries returns the keys of mapping n in file order, with YAML merge
// keys (`<<: *defaults`) expanded: merged keys come first and explicit keys
// override them. A key given twice is reported once, on its second use.
func (l *loader) mapEntries(path string, n *yaml.Node) []entry {
	return l.mapEntriesDepth(path, n, 0)
}

func (l *loader) mapEntriesDepth(path string, n *yaml.Node, depth int) []entry {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > maxAliasDepth || !l.spend(len(n.Content)/2, n) {
		return nil
	}
	var merged, explicit []entry
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, l.mergeSources(path, v, depth)...)
			continue
		}
		rk := resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			l.problem(path, k, "keys must be plain names, not lists or mappings")
			continue
		}
		key, _ := scalarText(rk)
		if isNull(rk) {
			key = ""
		}
		if line, seen := firstLine[key]; seen {
			l.problemf(joinKey(path, key), k, "duplicate key (first given on line %d)", line)
			continue
		}
		firstLine[key] = k.Line
		explicit = append(explicit, entry{Key: key, KeyNode: k, Value: v})
	}
	if len(merged) == 0 {
		return explicit
	}
	// YAML merge: explicit keys win; among merged sources the first one wins.
	out := make([]entry, 0, len(merged)+len(explicit))
	taken := map[string]bool{}
	for _, e := range explicit {
		taken[e.Key] = true
	}
	for _, e := range merged {
		if !taken[e.Key] {
			taken[e.Key] = true
			out = append(out, e)
		}
	}
	return append(out, explicit...)
}

// mergeSources expands the value of a `<<` key: one mapping or a list of them.
func (l *loader) mergeSources(path string, v *yaml.Node, depth int) []entry {
	rv := resolve(v)
	switch {
	case rv != nil && rv.Kind == yaml.MappingNode:
		return l.mapEntriesDepth(path, rv, depth+1)
	case rv != nil && rv.Kind == yaml.SequenceNode:
		var out []entry
		for _, item := range rv.Content {
			if !isMapping(item) {
				l.problem(path, item, "a merge key (<<) takes a mapping or a list of mappings")
				continue
			}
			out = append(out, l.mapEntriesDepth(path, item, depth+1)...)
		}
		return out
	}
	l.problem(path, v, "a merge key (<<) takes a mapping or a list of mappings")
	return nil
}

// items returns the elements of sequence n.
func (l *loader) items(n *yaml.Node) []*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || !l.spend(len(n.Content), n) {
		return nil
	}
	return n.Content
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }
