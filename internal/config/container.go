package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// egressNotEnforced warns about egress options that differ from the defaults.
const egressNotEnforced = "accepted; the egress firewall is not enforced by this version of lunorad"

// Cloudflare's label limits (workerd api/container.c++): at most 10 labels,
// names of at most 16 bytes, values of at most 64 bytes.
const (
	maxLabels        = 10
	maxLabelKeyBytes = 16
	maxLabelValBytes = 64
)

// maxIntOption bounds integer options Lunora leaves unbounded (maxInstances,
// rollout.gracePeriodSeconds), so they fit an int everywhere.
const maxIntOption = math.MaxInt32

// envNamePattern is @lunora/container's ENV_NAME_PATTERN (/^[A-Z_]\w*$/i).
var envNamePattern = regexp.MustCompile(`(?i)^[A-Z_]\w*$`)

// durationPattern is the `sleepAfter`/`hardTimeout` string grammar of
// @cloudflare/containers (/^\d+[smh]$/): no days, decimals or compounds.
var durationPattern = regexp.MustCompile(`^\d+[smh]$`)

// durationUnitSeconds is Lunora's DURATION_UNIT_SECONDS.
var durationUnitSeconds = map[byte]float64{'s': 1, 'm': 60, 'h': 3600}

// containerValidator checks one container's options. Each method handles
// one option (type, Lunora's rule, extra local checks) and fills c; they run
// in @lunora/container's check order so problems list in that order.
type containerValidator struct {
	l       *loader
	path    string // "containers.<name>"
	keyNode *yaml.Node
	fields  map[string]entry
	c       *Container
}

// container validates one container definition; nil means it has problems.
func (l *loader) container(name string, keyNode, n *yaml.Node) *Container {
	path := "containers." + name
	if !isMapping(n) {
		l.problemf(path, n, "a container must be a mapping of defineContainer options (got %s)", describe(n))
		return nil
	}
	before := len(l.problems)
	v := &containerValidator{l: l, path: path, keyNode: keyNode, fields: l.knownKeys(path, n, containerKeys), c: &Container{
		Name:           name,
		Line:           keyNode.Line,
		SleepAfter:     DefaultSleepAfter,
		EnableInternet: true,
		PingEndpoint:   DefaultPingEndpoint,
		InstanceType:   namedInstanceTypes[DefaultInstanceType],
		Rollout:        Rollout{GracePeriodSeconds: -1},
	}}
	v.image()
	v.defaultPort()
	v.rollout()
	v.maxInstances()
	v.instanceType()
	v.c.SleepAfter = v.duration("sleepAfter", DefaultSleepAfter)
	v.c.HardTimeout = v.duration("hardTimeout", 0)
	v.envAndSecrets()
	v.requiredPorts()
	v.entrypoint()
	v.egress()
	v.pingEndpoint()
	v.labels()
	v.readyOn()
	v.deployOnlyOptions()
	v.warnings()
	if len(l.problems) > before {
		return nil
	}
	return v.c
}

// field returns the option's key and value, if it is present.
func (v *containerValidator) field(key string) (entry, bool) {
	e, ok := v.fields[key]
	return e, ok
}

func (v *containerValidator) at(key string) string { return v.path + "." + key }

// port applies Lunora's assertValidPort: an integer in 1–65535.
func (v *containerValidator) port(path, field string, n *yaml.Node) (int, bool) {
	f, ok := numberValue(n)
	if !ok || !isInteger(f) || f < 1 || f > 65535 {
		v.l.problemf(path, n, "`%s` must be an integer in 1–65535 (got %s)", field, describe(n))
		return 0, false
	}
	return int(f), true
}

// bigInt reports a whole number Lunora accepts but that does not fit the
// daemon's int options; no real configuration comes near the limit.
func (v *containerValidator) bigInt(path, field string, n *yaml.Node, f float64) bool {
	if f > maxIntOption {
		v.l.problemf(path, n, "`%s` is too large (at most %d)", field, maxIntOption)
		return true
	}
	return false
}

func (v *containerValidator) image() {
	e, ok := v.field("image")
	if !ok {
		v.l.problem(v.at("image"), v.keyNode, "`image` is required: a directory holding a Dockerfile, a path to a Dockerfile, or { registry: \"<reference>\" }")
		return
	}
	if img, ok := v.l.image(v.at("image"), e.Value); ok {
		v.c.Image = img
	}
}

func (v *containerValidator) defaultPort() {
	if e, ok := v.field("defaultPort"); ok {
		v.c.DefaultPort, _ = v.port(v.at("defaultPort"), "defaultPort", e.Value)
	}
}

func (v *containerValidator) rollout() {
	e, ok := v.field("rollout")
	if !ok || isNull(e.Value) { // Lunora reads config.rollout?.x
		return
	}
	path := v.at("rollout")
	if !isMapping(e.Value) {
		v.l.problemf(path, e.Value, "`rollout` must be a { stepPercentage, gracePeriodSeconds } object (got %s)", describe(e.Value))
		return
	}
	sub := v.l.knownKeys(path, e.Value, rolloutKeys)
	if s, ok := sub["stepPercentage"]; ok {
		f, isNum := numberValue(s.Value)
		if !isNum || !isInteger(f) || f < 1 || f > 100 {
			v.l.problemf(path+".stepPercentage", s.Value, "`rollout.stepPercentage` must be an integer in 1–100 (got %s)", describe(s.Value))
		} else {
			v.c.Rollout.StepPercentage = int(f)
		}
	}
	if g, ok := sub["gracePeriodSeconds"]; ok {
		f, isNum := numberValue(g.Value)
		switch {
		case !isNum || !isInteger(f) || f < 0:
			v.l.problemf(path+".gracePeriodSeconds", g.Value, "`rollout.gracePeriodSeconds` must be a non-negative integer (got %s)", describe(g.Value))
		case !v.bigInt(path+".gracePeriodSeconds", "rollout.gracePeriodSeconds", g.Value, f):
			v.c.Rollout.GracePeriodSeconds = int(f)
		}
	}
}

func (v *containerValidator) maxInstances() {
	e, ok := v.field("maxInstances")
	if !ok {
		return
	}
	f, isNum := numberValue(e.Value)
	switch {
	case !isNum || !isInteger(f) || f < 1:
		v.l.problemf(v.at("maxInstances"), e.Value, "`maxInstances` must be a positive integer (got %s)", describe(e.Value))
	case !v.bigInt(v.at("maxInstances"), "maxInstances", e.Value, f):
		v.c.MaxInstances = int(f)
	}
}

func (v *containerValidator) instanceType() {
	e, ok := v.field("instanceType")
	if !ok || isNull(e.Value) { // Lunora only checks a string value
		return
	}
	if it, ok := v.l.instanceType(v.at("instanceType"), e.Value); ok {
		v.c.InstanceType = it
	}
}

// duration validates sleepAfter or hardTimeout with Lunora's grammar and
// messages, returning def when the option is absent or invalid.
func (v *containerValidator) duration(field string, def time.Duration) time.Duration {
	e, ok := v.field(field)
	if !ok {
		return def
	}
	path := v.at(field)
	var seconds float64
	if s, isStr := stringValue(e.Value); isStr {
		if !durationPattern.MatchString(s) {
			v.l.problemf(path, e.Value, "`%s` string \"%s\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", field, s)
			return def
		}
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil { // only out of range; the pattern guarantees digits
			n = math.Inf(1)
		}
		seconds = n * durationUnitSeconds[s[len(s)-1]]
	} else {
		f, isNum := numberValue(e.Value)
		if !isNum || !isInteger(f) || f < 1 {
			v.l.problemf(path, e.Value, "`%s` must be a positive integer number of seconds or a duration string like \"5m\" (got %s)", field, describe(e.Value))
			return def
		}
		seconds = f
	}
	if seconds > float64(math.MaxInt64/int64(time.Second)) {
		v.l.problemf(path, e.Value, "`%s` is too long (at most %dh)", field, math.MaxInt64/int64(time.Hour))
		return def
	}
	if seconds == 0 && field == "hardTimeout" { // only "0s", "0m" or "0h" get here
		v.l.warn(path, e.KeyNode, "a hard timeout of 0 would stop every instance as it starts; lunorad treats it as no hard timeout")
	}
	return time.Duration(seconds) * time.Second
}

// envAndSecrets checks env, buildArgs, secrets and secretsStore together,
// as Lunora's assertValidEnvAndSecrets does: names, then the collisions
// where one source would silently overwrite another at start.
func (v *containerValidator) envAndSecrets() {
	var envNames map[string]bool
	v.c.Env, envNames = v.stringMap("env", "env variable name", "a mapping of variable names to string values")
	v.c.BuildArgs, _ = v.stringMap("buildArgs", "buildArg name", "a mapping of build argument names to string values")

	secretNames := map[string]bool{}
	if e, ok := v.field("secrets"); ok && !isNull(e.Value) {
		path := v.at("secrets")
		if !isSequence(e.Value) {
			v.l.problemf(path, e.Value, "`secrets` must be a list of secret names (got %s)", describe(e.Value))
		}
		v.c.Secrets = []string{}
		for i, item := range v.l.items(e.Value) {
			ipath := indexPath(path, i)
			name, ok := stringValue(item)
			if !ok {
				v.l.problemf(ipath, item, "`secrets` entries must be secret names (got %s)", describe(item))
				continue
			}
			secretNames[name] = true
			if !envNamePattern.MatchString(name) {
				v.l.problemf(ipath, item, "secret name \"%s\" is not a valid environment variable name", name)
				continue
			}
			if envNames[name] {
				v.l.problemf(ipath, item, "\"%s\" is declared in both `env` and `secrets` — a secret would silently overwrite the static env value; pick one", name)
				continue
			}
			v.c.Secrets = append(v.c.Secrets, name)
		}
	}
	v.secretsStore(envNames, secretNames)
}

// stringMap reads env or buildArgs: valid variable names to string values.
// names holds every key as written, valid or not, for the collision checks.
func (v *containerValidator) stringMap(field, nameLabel, want string) (values map[string]string, names map[string]bool) {
	names = map[string]bool{}
	e, ok := v.field(field)
	if !ok || isNull(e.Value) { // Lunora reads config.env ?? {}
		return nil, names
	}
	path := v.at(field)
	if !isMapping(e.Value) {
		v.l.problemf(path, e.Value, "`%s` must be %s (got %s)", field, want, describe(e.Value))
		return nil, names
	}
	values = map[string]string{}
	for _, kv := range v.l.mapEntries(path, e.Value) {
		names[kv.Key] = true
		kpath := joinKey(path, kv.Key)
		if !envNamePattern.MatchString(kv.Key) {
			v.l.problemf(kpath, kv.KeyNode, "%s \"%s\" is not a valid environment variable name", nameLabel, kv.Key)
		}
		s, ok := stringValue(kv.Value)
		if !ok {
			v.l.problemf(kpath, kv.Value, "`%s` values must be strings (got %s); quote the value", field, describe(kv.Value))
			continue
		}
		values[kv.Key] = s
	}
	return values, names
}

func (v *containerValidator) secretsStore(envNames, secretNames map[string]bool) {
	e, ok := v.field("secretsStore")
	if !ok || isNull(e.Value) {
		return
	}
	path := v.at("secretsStore")
	if !isMapping(e.Value) {
		v.l.problemf(path, e.Value, "`secretsStore` must be a mapping of env names to Secrets Store binding names (got %s)", describe(e.Value))
		return
	}
	v.c.SecretsStore = map[string]string{}
	for _, kv := range v.l.mapEntries(path, e.Value) {
		kpath := joinKey(path, kv.Key)
		good := true
		if !envNamePattern.MatchString(kv.Key) {
			v.l.problemf(kpath, kv.KeyNode, "secretsStore env name \"%s\" is not a valid environment variable name", kv.Key)
			good = false
		}
		binding, isStr := stringValue(kv.Value)
		if !isStr || jsTrim(binding) == "" {
			v.l.problemf(kpath, kv.Value, "`secretsStore[\"%s\"]` must be a non-empty Secrets Store binding name", kv.Key)
			good = false
		}
		if envNames[kv.Key] || secretNames[kv.Key] {
			v.l.problemf(kpath, kv.KeyNode, "\"%s\" is declared in both `secretsStore` and `env`/`secrets` — pick one source for the value", kv.Key)
			good = false
		}
		if good {
			v.c.SecretsStore[kv.Key] = binding
		}
	}
}

func (v *containerValidator) requiredPorts() {
	e, ok := v.field("requiredPorts")
	if !ok {
		return
	}
	path := v.at("requiredPorts")
	ports := v.l.items(e.Value)
	if len(ports) == 0 {
		v.l.problem(path, e.Value, "`requiredPorts` must be a non-empty array of ports, or omitted")
		return
	}
	for i, item := range ports {
		if p, ok := v.port(indexPath(path, i), "requiredPorts[]", item); ok {
			v.c.RequiredPorts = append(v.c.RequiredPorts, p)
		}
	}
}

func (v *containerValidator) entrypoint() {
	e, ok := v.field("entrypoint")
	if !ok {
		return
	}
	const msg = "`entrypoint` must be a non-empty array of non-empty strings, or omitted"
	path := v.at("entrypoint")
	args := v.l.items(e.Value)
	if len(args) == 0 {
		v.l.problem(path, e.Value, msg)
		return
	}
	var parts []string
	for i, item := range args {
		s, isStr := stringValue(item)
		if !isStr || jsTrim(s) == "" {
			v.l.problem(indexPath(path, i), item, msg)
			continue
		}
		parts = append(parts, s)
	}
	v.c.Entrypoint = parts
}

// egress checks enableInternet (Lunora does not, but a non-boolean would be
// truthy in JavaScript and surprise the user), the host lists and interceptHttps.
func (v *containerValidator) egress() {
	if e, ok := v.field("enableInternet"); ok {
		if b, isBool := boolValue(e.Value); isBool {
			v.c.EnableInternet = b
		} else {
			v.l.problemf(v.at("enableInternet"), e.Value, "`enableInternet` must be a boolean, or omitted (got %s)", describe(e.Value))
		}
	}
	v.c.AllowedHosts = v.hostList("allowedHosts")
	v.c.DeniedHosts = v.hostList("deniedHosts")
	if e, ok := v.field("interceptHttps"); ok {
		if b, isBool := boolValue(e.Value); isBool {
			v.c.InterceptHTTPS = b
		} else {
			v.l.problem(v.at("interceptHttps"), e.Value, "`interceptHttps` must be a boolean, or omitted")
		}
	}
}

// hostList returns nil when the option is absent and a non-nil (maybe empty)
// list when present: Cloudflare treats `allowedHosts: []` as "allow nothing".
func (v *containerValidator) hostList(field string) []string {
	e, ok := v.field(field)
	if !ok || isNull(e.Value) { // Lunora reads hosts?.some(...)
		return nil
	}
	msg := "`" + field + "` must be an array of non-empty hostname patterns"
	path := v.at(field)
	if !isSequence(e.Value) {
		v.l.problem(path, e.Value, msg)
		return nil
	}
	hosts := []string{}
	for i, item := range v.l.items(e.Value) {
		s, isStr := stringValue(item)
		if !isStr || jsTrim(s) == "" {
			v.l.problem(indexPath(path, i), item, msg)
			continue
		}
		hosts = append(hosts, s)
	}
	return hosts
}

func (v *containerValidator) pingEndpoint() {
	e, ok := v.field("pingEndpoint")
	if !ok {
		return
	}
	s, isStr := stringValue(e.Value)
	if !isStr || jsTrim(s) == "" {
		v.l.problem(v.at("pingEndpoint"), e.Value, "`pingEndpoint` must be a non-empty path string")
		return
	}
	v.c.PingEndpoint = s
}

// labels applies Lunora's rule, then Cloudflare's limits (workerd rejects
// more than 10 labels, names over 16 bytes and values over 64 bytes).
func (v *containerValidator) labels() {
	e, ok := v.field("labels")
	if !ok || isNull(e.Value) { // Lunora reads config.labels ?? {}
		return
	}
	const msg = "`labels` must be a record of non-empty keys to string values"
	path := v.at("labels")
	if !isMapping(e.Value) {
		v.l.problem(path, e.Value, msg)
		return
	}
	entries := v.l.mapEntries(path, e.Value)
	labels := map[string]string{}
	for _, kv := range entries {
		if jsTrim(kv.Key) == "" {
			v.l.problem(path, kv.KeyNode, msg)
			continue
		}
		kpath := joinKey(path, kv.Key)
		s, isStr := stringValue(kv.Value)
		if !isStr {
			v.l.problem(kpath, kv.Value, msg)
			continue
		}
		labels[kv.Key] = s
	}
	for _, kv := range entries {
		kpath := joinKey(path, kv.Key)
		if n := len(kv.Key); n > maxLabelKeyBytes {
			v.l.problemf(kpath, kv.KeyNode, "`labels` key %q is %d bytes long; Cloudflare allows at most %d", kv.Key, n, maxLabelKeyBytes)
		}
		if s, isStr := stringValue(kv.Value); isStr && len(s) > maxLabelValBytes {
			v.l.problemf(kpath, kv.Value, "`labels` value of %q is %d bytes long; Cloudflare allows at most %d", kv.Key, len(s), maxLabelValBytes)
		}
	}
	if len(entries) > maxLabels {
		v.l.problemf(path, e.Value, "`labels` has %d entries; Cloudflare allows at most %d", len(entries), maxLabels)
	}
	v.c.Labels = labels
}

// readyOn checks each probe with Lunora's messages, adds the leading "/"
// and resolves its port (the check's own, else defaultPort) at load time, so
// a probe with no port is a config error rather than a failed start.
func (v *containerValidator) readyOn() {
	e, ok := v.field("readyOn")
	if !ok || isNull(e.Value) { // Lunora reads config.readyOn ?? []
		return
	}
	path := v.at("readyOn")
	if !isSequence(e.Value) {
		v.l.problemf(path, e.Value, "`readyOn` must be a list of { path, port?, status? } checks (got %s)", describe(e.Value))
		return
	}
	const pathMsg = "`readyOn[].path` must be a non-empty HTTP path string"
	for i, item := range v.l.items(e.Value) {
		ipath := indexPath(path, i)
		if !isMapping(item) {
			v.l.problem(ipath, item, pathMsg)
			continue
		}
		sub := v.l.knownKeys(ipath, item, readyOnKeys)
		check := ReadyCheck{Status: 200}
		good := true
		raw := ""
		if p, ok := sub["path"]; !ok {
			v.l.problem(ipath+".path", item, pathMsg)
			good = false
		} else if s, isStr := stringValue(p.Value); !isStr || jsTrim(s) == "" {
			v.l.problem(ipath+".path", p.Value, pathMsg)
			good = false
		} else if s != jsTrim(s) {
			v.l.problem(ipath+".path", p.Value, "`readyOn[].path` must not have leading or trailing whitespace")
			good = false
		} else {
			raw = s
			check.Path = s
			if !strings.HasPrefix(s, "/") {
				check.Path = "/" + s
			}
		}
		if p, ok := sub["port"]; ok {
			port, ok := v.port(ipath+".port", "readyOn[].port", p.Value)
			check.Port = port
			good = good && ok
		}
		if s, ok := sub["status"]; ok {
			f, isNum := numberValue(s.Value)
			if !isNum || !isInteger(f) || f < 100 || f > 599 {
				v.l.problemf(ipath+".status", s.Value, "`readyOn[].status` must be an HTTP status code in 100–599 (got %s)", describe(s.Value))
				good = false
			} else {
				check.Status = int(f)
			}
		}
		if _, hasPort := sub["port"]; !hasPort && raw != "" {
			if _, hasDefault := v.field("defaultPort"); !hasDefault {
				v.l.problemf(ipath, item, "readyOn check \"%s\" has no port — set the check's `port` or the container `defaultPort`.", raw)
				good = false
			}
			check.Port = v.c.DefaultPort
		}
		if good {
			v.c.ReadyOn = append(v.c.ReadyOn, check)
		}
	}
}

// deployOnlyOptions checks the options @lunora/container passes to wrangler
// or to newer runtime features without checking them itself.
func (v *containerValidator) deployOnlyOptions() {
	if e, ok := v.field("name"); ok {
		if s, isStr := stringValue(e.Value); isStr && jsTrim(s) != "" {
			v.c.DisplayName = s
		} else {
			v.l.problemf(v.at("name"), e.Value, "`name` must be a non-empty string (got %s)", describe(e.Value))
		}
	}
	if e, ok := v.field("schedulingPolicy"); ok {
		if s, _ := stringValue(e.Value); s == SchedulingDefault || s == SchedulingDurableObject {
			v.c.SchedulingPolicy = s
		} else {
			v.l.problemf(v.at("schedulingPolicy"), e.Value, "`schedulingPolicy` must be %q or %q (got %s)", SchedulingDefault, SchedulingDurableObject, describe(e.Value))
		}
	}
	if e, ok := v.field("sandbox"); ok {
		if b, isBool := boolValue(e.Value); isBool {
			v.c.Sandbox = b
		} else {
			v.l.problemf(v.at("sandbox"), e.Value, "`sandbox` must be a boolean, or omitted (got %s)", describe(e.Value))
		}
	}
	if e, ok := v.field("backups"); ok {
		v.backups(e)
	}
}

func (v *containerValidator) backups(e entry) {
	path := v.at("backups")
	if !isMapping(e.Value) {
		v.l.problemf(path, e.Value, "`backups` must be a { bucket, prefix? } object (got %s)", describe(e.Value))
		return
	}
	sub := v.l.knownKeys(path, e.Value, backupsKeys)
	b := &Backups{}
	good := true
	if bk, ok := sub["bucket"]; !ok {
		v.l.problem(path+".bucket", e.Value, "`backups.bucket` is required: the name of the R2 bucket that holds the backups")
		good = false
	} else if s, isStr := stringValue(bk.Value); !isStr || jsTrim(s) == "" {
		v.l.problemf(path+".bucket", bk.Value, "`backups.bucket` must be a non-empty bucket name (got %s)", describe(bk.Value))
		good = false
	} else {
		b.Bucket = s
	}
	if p, ok := sub["prefix"]; ok {
		if s, isStr := stringValue(p.Value); isStr {
			b.Prefix = s
		} else {
			v.l.problemf(path+".prefix", p.Value, "`backups.prefix` must be a string (got %s)", describe(p.Value))
			good = false
		}
	}
	if good {
		v.c.Backups = b
	}
}

// warnings lists options that are accepted but have no effect in this
// version of lunorad, and declared secrets that are not set anywhere.
func (v *containerValidator) warnings() {
	c := v.c
	warnIf := func(cond bool, key, msg string) {
		if e, ok := v.field(key); ok && cond {
			v.l.warn(v.at(key), e.KeyNode, msg)
		}
	}
	if !v.l.opts.EgressEnforced {
		warnIf(!c.EnableInternet, "enableInternet", egressNotEnforced)
		warnIf(c.AllowedHosts != nil, "allowedHosts", egressNotEnforced)
		warnIf(c.DeniedHosts != nil, "deniedHosts", egressNotEnforced)
		warnIf(c.InterceptHTTPS, "interceptHttps", egressNotEnforced)
	}
	warnIf(c.Image.Kind == ImageRegistry && len(c.BuildArgs) > 0, "buildArgs",
		"ignored for a { registry } image (wrangler ignores image_vars there too)")
	warnIf(c.Image.Kind == ImageBuild, "image",
		"accepted; lunorad cannot build { build } (Railpack) images yet, so starting this container will fail")
	warnIf(c.Sandbox, "sandbox",
		"accepted; lunorad does not serve the sandbox helpers (files, backups, mounts, spawn) yet")
	warnIf(c.Backups != nil, "backups", "accepted; lunorad does not run sandbox backups yet")
	warnIf(c.SchedulingPolicy == SchedulingDurableObject, "schedulingPolicy",
		"accepted; lunorad schedules every container the default way (no snapshots, no per-start image or instance type)")
	if e, ok := v.field("secrets"); ok && len(c.Secrets) > 0 {
		src := v.l.secretSource()
		for i, item := range v.l.items(e.Value) {
			name, _ := stringValue(item)
			if src == nil || !slices.Contains(c.Secrets, name) {
				continue
			}
			if _, set := src.Lookup(name); !set {
				v.l.warn(indexPath(v.at("secrets"), i), item, fmt.Sprintf(
					"declared secret %q is not set in %s or the environment; starting this container will fail", name, DevVarsFileName))
			}
		}
	}
}

// knownKeys returns the entries of a nested option's mapping by key,
// reporting the keys it does not know.
func (l *loader) knownKeys(path string, n *yaml.Node, known []string) map[string]entry {
	out := map[string]entry{}
	for _, e := range l.mapEntries(path, n) {
		if !slices.Contains(known, e.Key) {
			l.problem(joinKey(path, e.Key), e.KeyNode, unknownKey(e.Key, known))
			continue
		}
		out[e.Key] = e
	}
	return out
}

// jsTrim is JavaScript's String.prototype.trim, which Lunora's blank checks use.
func jsTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' })
}
