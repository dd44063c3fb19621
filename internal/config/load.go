package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions tunes Load. The zero value is what the daemon uses.
type LoadOptions struct {
	// LookupEnv reads the process environment when Load checks that every
	// declared secret is set (a warning, not an error: Lunora only fails
	// when the container starts). Nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// EgressEnforced turns off the warnings that enableInternet,
	// allowedHosts, deniedHosts and interceptHttps are not enforced. Set it
	// once the daemon runs the egress proxy.
	EgressEnforced bool
}

// Load reads, validates and completes the config file at path: YAML, or JSON
// when the name ends in .json. Every problem is collected; if there is any,
// the error is a *ValidationError listing them all and the config is nil.
// Warnings come back in both cases. An error of another type means the file
// could not be read at all.
func Load(path string, opts LoadOptions) (*Config, []Warning, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config path %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	return loadBytes(data, abs, opts)
}

// loadBytes is Load after the file has been read; abs is its absolute path.
func loadBytes(data []byte, abs string, opts LoadOptions) (*Config, []Warning, error) {
	l := &loader{dir: filepath.Dir(abs), opts: opts}
	root := l.parse(data, strings.EqualFold(filepath.Ext(abs), ".json"))
	cfg := &Config{Path: abs, Dir: l.dir, Listen: DefaultListen, Containers: map[string]*Container{}}
	if root != nil || len(l.problems) == 0 {
		l.document(root, cfg)
	}
	if len(l.problems) > 0 {
		return nil, l.warnings, &ValidationError{Problems: l.problems}
	}
	return cfg, l.warnings, nil
}

// loader collects problems and warnings while it walks the node tree.
type loader struct {
	dir      string
	opts     LoadOptions
	problems []Problem
	warnings []Warning
	// names lists every container key with its line, valid or not, for the
	// binding-collision check.
	names []nameAt
	// visited counts keys and items walked, against maxVisited.
	visited    int
	overBudget bool
	// secrets is built on first use; secretsLoaded records that attempt.
	secrets       *SecretSource
	secretsLoaded bool
}

type nameAt struct {
	name string
	line int
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

func (l *loader) problem(path string, n *yaml.Node, msg string) {
	l.problems = append(l.problems, Problem{Path: path, Message: msg, Line: line(n)})
}

func (l *loader) problemf(path string, n *yaml.Node, format string, args ...any) {
	l.problem(path, n, fmt.Sprintf(format, args...))
}

func (l *loader) warn(path string, n *yaml.Node, msg string) {
	l.warnings = append(l.warnings, Warning{Path: path, Message: msg, Line: line(n)})
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse returns the root node, nil for an empty document, recording a
// problem when the file is not well-formed.
func (l *loader) parse(data []byte, isJSON bool) *yaml.Node {
	if isJSON {
		root, p := parseJSON(data)
		if p != nil {
			l.problems = append(l.problems, *p)
		}
		return root
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: no containers, default listen
		}
		l.yamlProblem(err)
		return nil
	}
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		if err != nil {
			l.yamlProblem(err)
		} else {
			l.problem("", &second, "the file holds more than one YAML document; lunorad reads exactly one")
		}
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func (l *loader) yamlProblem(err error) {
	msg := err.Error()
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		l.problems = append(l.problems, Problem{Message: "invalid YAML: " + m[2], Line: n})
		return
	}
	l.problems = append(l.problems, Problem{Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")})
}

// document walks the top-level mapping.
func (l *loader) document(root *yaml.Node, cfg *Config) {
	if root != nil && !isNull(root) && !isMapping(root) {
		l.problemf("", root, "the file must be a mapping with the keys `listen` and `containers` (got %s)", describe(root))
		return
	}
	var containersKey *yaml.Node
	for _, e := range l.mapEntries("", root) {
		switch e.Key {
		case "$schema":
			if _, ok := stringValue(e.Value); !ok {
				l.problemf("$schema", e.Value, "`$schema` must be a string (got %s)", describe(e.Value))
			}
		case "listen":
			if addr, ok := l.listen(e.Value); ok {
				cfg.Listen = addr
			}
		case "containers":
			containersKey = e.KeyNode
			l.containers(e.Value, cfg)
		default:
			l.problem(e.Key, e.KeyNode, unknownKey(e.Key, topLevelKeys))
		}
	}
	if len(cfg.Containers) == 0 && len(l.problems) == 0 {
		l.warn("containers", containersKey, "no containers are defined; lunorad will serve nothing")
	}
	l.bindingCollisions()
	cfg.Names = make([]string, 0, len(cfg.Containers))
	for name := range cfg.Containers {
		cfg.Names = append(cfg.Names, name)
	}
	sort.Strings(cfg.Names)
}

// listen checks host:port. The host must be an IP address or localhost: the
// daemon starts containers on request, so it must never end up listening on
// every interface because a host name resolved unexpectedly or was left out.
func (l *loader) listen(n *yaml.Node) (string, bool) {
	s, ok := stringValue(n)
	if !ok {
		l.problemf("listen", n, "`listen` must be a host:port string such as %s (got %s)", DefaultListen, describe(n))
		return "", false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		l.problemf("listen", n, "`listen` must be host:port, e.g. %s (got %q)", DefaultListen, s)
		return "", false
	}
	good := true
	if host != "localhost" && net.ParseIP(host) == nil {
		l.problemf("listen", n, "`listen` host %q must be an IP address or localhost (write 0.0.0.0 to listen on every interface)", host)
		good = false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		l.problemf("listen", n, "`listen` port %q must be an integer in 0–65535 (0 picks a free port)", port)
		good = false
	}
	return s, good
}

// containers walks the `containers` mapping, keyed by export name.
func (l *loader) containers(n *yaml.Node, cfg *Config) {
	if isNull(n) {
		return
	}
	if !isMapping(n) {
		l.problemf("containers", n, "`containers` must be a mapping from export name to container options (got %s)", describe(n))
		return
	}
	for _, e := range l.mapEntries("containers", n) {
		path := "containers." + e.Key
		l.names = append(l.names, nameAt{name: e.Key, line: e.KeyNode.Line})
		if msg := exportNameProblem(e.Key); msg != "" {
			l.problem(path, e.KeyNode, msg)
		}
		if c := l.container(e.Key, e.KeyNode, e.Value); c != nil {
			cfg.Containers[e.Key] = c
		}
	}
}

// bindingCollisions rejects two export names that share a Durable Object
// binding, with codegen's message. Like codegen, it reports on the name that
// sorts later.
func (l *loader) bindingCollisions() {
	names := slices.Clone(l.names)
	slices.SortStableFunc(names, func(a, b nameAt) int { return strings.Compare(a.name, b.name) })
	first := map[string]string{}
	for _, n := range names {
		binding := BindingName(n.name)
		if prev, ok := first[binding]; ok {
			l.problems = append(l.problems, Problem{
				Path:    "containers." + n.name,
				Message: fmt.Sprintf("containers %q and %q both map to the binding %s", prev, n.name, binding),
				Line:    n.line,
			})
			continue
		}
		first[binding] = n.name
	}
}

// secretSource returns the secrets as the daemon will see them, or nil when
// .dev.vars cannot be read (reported once, as a warning: the daemon fails
// loudly on it when it starts).
func (l *loader) secretSource() *SecretSource {
	if !l.secretsLoaded {
		l.secretsLoaded = true
		devVars, err := LoadDevVars(l.dir)
		if err != nil {
			l.warn(DevVarsFileName, nil, "cannot read it, so declared secrets were not checked: "+err.Error())
			return nil
		}
		l.secrets = NewSecretSourceFrom(devVars, l.opts.LookupEnv)
	}
	return l.secrets
}

var exportNamePattern = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// jsReservedWords cannot be `export const <name>` in lunora/containers.ts.
var jsReservedWords = []string{
	"await", "break", "case", "catch", "class", "const", "continue", "debugger",
	"default", "delete", "do", "else", "enum", "export", "extends", "false",
	"finally", "for", "function", "if", "implements", "import", "in",
	"instanceof", "interface", "let", "new", "null", "package", "private",
	"protected", "public", "return", "static", "super", "switch", "this",
	"throw", "true", "try", "typeof", "var", "void", "while", "with", "yield",
}

// exportNameProblem explains why name cannot be a container's export name,
// or returns "".
func exportNameProblem(name string) string {
	if !exportNamePattern.MatchString(name) {
		return fmt.Sprintf("container name %q must be a JavaScript identifier (letters, digits, _ and $, not starting with a digit): it is the export name in lunora/containers.ts", name)
	}
	if slices.Contains(jsReservedWords, name) {
		return fmt.Sprintf("container name %q is a reserved word in JavaScript and cannot be an export name", name)
	}
	return ""
}
