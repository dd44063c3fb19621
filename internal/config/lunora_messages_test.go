package config

import (
	"testing"
)

// TestLunoraRejections has one case per rejection of @lunora/container's
// defineContainer (lunora-container.md §1), with Lunora's exact message
// (without its "defineContainer: " prefix) on the option's path and line.
func TestLunoraRejections(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string // whole file
		path    string
		message string
		line    int
	}{
		// image
		{"image empty", "containers:\n  box:\n    image: \"\"\n", "containers.box.image",
			"`image` must be a non-empty path or a { registry } reference", 3},
		{"image registry-like string", "containers:\n  box:\n    image: nginx:1.27\n", "containers.box.image",
			"`image` string \"nginx:1.27\" looks like a registry reference — pass it as { registry: \"nginx:1.27\" } instead. Plain strings are local Dockerfile paths.", 3},
		{"image digest string", "containers:\n  box:\n    image: ghcr.io/acme/app@sha256:abc\n", "containers.box.image",
			"`image` string \"ghcr.io/acme/app@sha256:abc\" looks like a registry reference — pass it as { registry: \"ghcr.io/acme/app@sha256:abc\" } instead. Plain strings are local Dockerfile paths.", 3},
		{"image.build empty", "containers:\n  box:\n    image: {build: \"\"}\n", "containers.box.image.build",
			"`image.build` must be a non-empty source directory for Railpack to build", 3},
		{"image.build not a string", "containers:\n  box:\n    image:\n      build: 5\n", "containers.box.image.build",
			"`image.build` must be a non-empty source directory for Railpack to build", 4},
		{"image.registry empty", "containers:\n  box:\n    image: {registry: \"\"}\n", "containers.box.image.registry",
			"`image.registry` must be a non-empty fully-qualified image reference", 3},
		{"image object without registry", "containers:\n  box:\n    image: {}\n", "containers.box.image",
			"`image.registry` must be a non-empty fully-qualified image reference", 3},

		// defaultPort
		{"defaultPort 0", oneContainer("    defaultPort: 0\n"), "containers.box.defaultPort",
			"`defaultPort` must be an integer in 1–65535 (got 0)", 4},
		{"defaultPort too big", oneContainer("    defaultPort: 65536\n"), "containers.box.defaultPort",
			"`defaultPort` must be an integer in 1–65535 (got 65536)", 4},
		{"defaultPort fractional", oneContainer("    defaultPort: 80.5\n"), "containers.box.defaultPort",
			"`defaultPort` must be an integer in 1–65535 (got 80.5)", 4},
		{"defaultPort negative", oneContainer("    defaultPort: -1\n"), "containers.box.defaultPort",
			"`defaultPort` must be an integer in 1–65535 (got -1)", 4},

		// rollout
		{"rollout.stepPercentage 0", oneContainer("    rollout: {stepPercentage: 0}\n"), "containers.box.rollout.stepPercentage",
			"`rollout.stepPercentage` must be an integer in 1–100 (got 0)", 4},
		{"rollout.stepPercentage 101", oneContainer("    rollout: {stepPercentage: 101}\n"), "containers.box.rollout.stepPercentage",
			"`rollout.stepPercentage` must be an integer in 1–100 (got 101)", 4},
		{"rollout.stepPercentage fractional", oneContainer("    rollout: {stepPercentage: 12.5}\n"), "containers.box.rollout.stepPercentage",
			"`rollout.stepPercentage` must be an integer in 1–100 (got 12.5)", 4},
		{"rollout.gracePeriodSeconds negative", oneContainer("    rollout:\n      gracePeriodSeconds: -1\n"), "containers.box.rollout.gracePeriodSeconds",
			"`rollout.gracePeriodSeconds` must be a non-negative integer (got -1)", 5},
		{"rollout.gracePeriodSeconds fractional", oneContainer("    rollout: {gracePeriodSeconds: 0.5}\n"), "containers.box.rollout.gracePeriodSeconds",
			"`rollout.gracePeriodSeconds` must be a non-negative integer (got 0.5)", 4},

		// maxInstances
		{"maxInstances 0", oneContainer("    maxInstances: 0\n"), "containers.box.maxInstances",
			"`maxInstances` must be a positive integer (got 0)", 4},
		{"maxInstances negative", oneContainer("    maxInstances: -3\n"), "containers.box.maxInstances",
			"`maxInstances` must be a positive integer (got -3)", 4},
		{"maxInstances fractional", oneContainer("    maxInstances: 2.5\n"), "containers.box.maxInstances",
			"`maxInstances` must be a positive integer (got 2.5)", 4},

		// instanceType
		{"instanceType unknown", oneContainer("    instanceType: huge\n"), "containers.box.instanceType",
			"unknown `instanceType` \"huge\" — use one of basic, lite, standard-1, standard-2, standard-3, standard-4, or a custom { vcpu, memoryMib, diskMb } object", 4},
		{"instanceType legacy alias", oneContainer("    instanceType: standard\n"), "containers.box.instanceType",
			"unknown `instanceType` \"standard\" — use one of basic, lite, standard-1, standard-2, standard-3, standard-4, or a custom { vcpu, memoryMib, diskMb } object", 4},

		// sleepAfter / hardTimeout
		{"sleepAfter days", oneContainer("    sleepAfter: 2d\n"), "containers.box.sleepAfter",
			"`sleepAfter` string \"2d\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", 4},
		{"sleepAfter compound", oneContainer("    sleepAfter: 1h30m\n"), "containers.box.sleepAfter",
			"`sleepAfter` string \"1h30m\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", 4},
		{"sleepAfter decimal string", oneContainer("    sleepAfter: 1.5h\n"), "containers.box.sleepAfter",
			"`sleepAfter` string \"1.5h\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", 4},
		{"sleepAfter digits as string", oneContainer("    sleepAfter: \"300\"\n"), "containers.box.sleepAfter",
			"`sleepAfter` string \"300\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", 4},
		{"sleepAfter 0", oneContainer("    sleepAfter: 0\n"), "containers.box.sleepAfter",
			"`sleepAfter` must be a positive integer number of seconds or a duration string like \"5m\" (got 0)", 4},
		{"sleepAfter negative", oneContainer("    sleepAfter: -30\n"), "containers.box.sleepAfter",
			"`sleepAfter` must be a positive integer number of seconds or a duration string like \"5m\" (got -30)", 4},
		{"sleepAfter fractional", oneContainer("    sleepAfter: 1.5\n"), "containers.box.sleepAfter",
			"`sleepAfter` must be a positive integer number of seconds or a duration string like \"5m\" (got 1.5)", 4},
		{"sleepAfter NaN", oneContainer("    sleepAfter: .nan\n"), "containers.box.sleepAfter",
			"`sleepAfter` must be a positive integer number of seconds or a duration string like \"5m\" (got NaN)", 4},
		{"hardTimeout bad string", oneContainer("    hardTimeout: soon\n"), "containers.box.hardTimeout",
			"`hardTimeout` string \"soon\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", 4},
		{"hardTimeout 0", oneContainer("    hardTimeout: 0\n"), "containers.box.hardTimeout",
			"`hardTimeout` must be a positive integer number of seconds or a duration string like \"5m\" (got 0)", 4},

		// env / buildArgs / secrets / secretsStore
		{"env name", oneContainer("    env: {1BAD: x}\n"), "containers.box.env.1BAD",
			"env variable name \"1BAD\" is not a valid environment variable name", 4},
		{"env name with dash", oneContainer("    env:\n      LOG-LEVEL: x\n"), "containers.box.env.LOG-LEVEL",
			"env variable name \"LOG-LEVEL\" is not a valid environment variable name", 5},
		{"buildArg name", oneContainer("    buildArgs: {node version: \"22\"}\n"), "containers.box.buildArgs.node version",
			"buildArg name \"node version\" is not a valid environment variable name", 4},
		{"secret name", oneContainer("    secrets: [OK, \"not ok\"]\n"), "containers.box.secrets[1]",
			"secret name \"not ok\" is not a valid environment variable name", 4},
		{"secret also in env", oneContainer("    env: {API_KEY: x}\n    secrets:\n      - API_KEY\n"), "containers.box.secrets[0]",
			"\"API_KEY\" is declared in both `env` and `secrets` — a secret would silently overwrite the static env value; pick one", 6},
		{"secretsStore env name", oneContainer("    secretsStore: {9LIVES: CAT}\n"), "containers.box.secretsStore.9LIVES",
			"secretsStore env name \"9LIVES\" is not a valid environment variable name", 4},
		{"secretsStore blank binding", oneContainer("    secretsStore: {STRIPE_KEY: \"  \"}\n"), "containers.box.secretsStore.STRIPE_KEY",
			"`secretsStore[\"STRIPE_KEY\"]` must be a non-empty Secrets Store binding name", 4},
		{"secretsStore non-string binding", oneContainer("    secretsStore: {STRIPE_KEY: 5}\n"), "containers.box.secretsStore.STRIPE_KEY",
			"`secretsStore[\"STRIPE_KEY\"]` must be a non-empty Secrets Store binding name", 4},
		{"secretsStore clashes with env", oneContainer("    env: {STRIPE_KEY: x}\n    secretsStore:\n      STRIPE_KEY: STRIPE_SECRET\n"), "containers.box.secretsStore.STRIPE_KEY",
			"\"STRIPE_KEY\" is declared in both `secretsStore` and `env`/`secrets` — pick one source for the value", 6},
		{"secretsStore clashes with secrets", oneContainer("    secrets: [STRIPE_KEY]\n    secretsStore: {STRIPE_KEY: STRIPE_SECRET}\n"), "containers.box.secretsStore.STRIPE_KEY",
			"\"STRIPE_KEY\" is declared in both `secretsStore` and `env`/`secrets` — pick one source for the value", 5},

		// requiredPorts
		{"requiredPorts empty", oneContainer("    requiredPorts: []\n"), "containers.box.requiredPorts",
			"`requiredPorts` must be a non-empty array of ports, or omitted", 4},
		{"requiredPorts entry", oneContainer("    requiredPorts: [8080, 0]\n"), "containers.box.requiredPorts[1]",
			"`requiredPorts[]` must be an integer in 1–65535 (got 0)", 4},

		// entrypoint
		{"entrypoint empty", oneContainer("    entrypoint: []\n"), "containers.box.entrypoint",
			"`entrypoint` must be a non-empty array of non-empty strings, or omitted", 4},
		{"entrypoint blank part", oneContainer("    entrypoint: [/bin/app, \" \"]\n"), "containers.box.entrypoint[1]",
			"`entrypoint` must be a non-empty array of non-empty strings, or omitted", 4},
		{"entrypoint non-string part", oneContainer("    entrypoint: [/bin/app, 3]\n"), "containers.box.entrypoint[1]",
			"`entrypoint` must be a non-empty array of non-empty strings, or omitted", 4},

		// egress
		{"allowedHosts blank", oneContainer("    allowedHosts: [ok.com, \"\"]\n"), "containers.box.allowedHosts[1]",
			"`allowedHosts` must be an array of non-empty hostname patterns", 4},
		{"deniedHosts blank", oneContainer("    deniedHosts:\n      - \"   \"\n"), "containers.box.deniedHosts[0]",
			"`deniedHosts` must be an array of non-empty hostname patterns", 5},
		{"interceptHttps not boolean", oneContainer("    interceptHttps: \"true\"\n"), "containers.box.interceptHttps",
			"`interceptHttps` must be a boolean, or omitted", 4},

		// pingEndpoint
		{"pingEndpoint blank", oneContainer("    pingEndpoint: \" \"\n"), "containers.box.pingEndpoint",
			"`pingEndpoint` must be a non-empty path string", 4},

		// labels
		{"labels blank key", oneContainer("    labels: {\"\": x}\n"), "containers.box.labels",
			"`labels` must be a record of non-empty keys to string values", 4},
		{"labels non-string value", oneContainer("    labels: {tier: 1}\n"), "containers.box.labels.tier",
			"`labels` must be a record of non-empty keys to string values", 4},

		// readyOn
		{"readyOn path empty", oneContainer("    defaultPort: 80\n    readyOn: [{path: \"\"}]\n"), "containers.box.readyOn[0].path",
			"`readyOn[].path` must be a non-empty HTTP path string", 5},
		{"readyOn path missing", oneContainer("    defaultPort: 80\n    readyOn: [{status: 200}]\n"), "containers.box.readyOn[0].path",
			"`readyOn[].path` must be a non-empty HTTP path string", 5},
		{"readyOn path whitespace", oneContainer("    defaultPort: 80\n    readyOn:\n      - path: \"/ready \"\n"), "containers.box.readyOn[0].path",
			"`readyOn[].path` must not have leading or trailing whitespace", 6},
		{"readyOn port", oneContainer("    defaultPort: 80\n    readyOn: [{path: /ready, port: 0}]\n"), "containers.box.readyOn[0].port",
			"`readyOn[].port` must be an integer in 1–65535 (got 0)", 5},
		{"readyOn status", oneContainer("    defaultPort: 80\n    readyOn: [{path: /ok}, {path: /ready, status: 600}]\n"), "containers.box.readyOn[1].status",
			"`readyOn[].status` must be an HTTP status code in 100–599 (got 600)", 5},
		{"readyOn without any port", oneContainer("    readyOn:\n      - path: /ready\n"), "containers.box.readyOn[0]",
			"readyOn check \"/ready\" has no port — set the check's `port` or the container `defaultPort`.", 5},
		{"readyOn without any port keeps the path as written", oneContainer("    readyOn: [{path: health}]\n"), "containers.box.readyOn[0]",
			"readyOn check \"health\" has no port — set the check's `port` or the container `defaultPort`.", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadYAML(t, tt.yaml)
			got := problemsOf(t, err)
			want := Problem{Path: tt.path, Message: tt.message, Line: tt.line}
			if len(got) != 1 || got[0] != want {
				t.Errorf("problems:\n got %+v\nwant [%+v]", got, want)
			}
		})
	}
}

// TestLunoraCheckOrder: problems of one container come in Lunora's check
// order, whatever the order of the keys in the file.
func TestLunoraCheckOrder(t *testing.T) {
	_, _, err := loadYAML(t, `containers:
  box:
    readyOn: [{path: ""}]
    labels: {tier: 1}
    pingEndpoint: ""
    interceptHttps: 1
    entrypoint: []
    requiredPorts: []
    secrets: [bad-name]
    hardTimeout: 0
    sleepAfter: 0
    instanceType: huge
    maxInstances: 0
    rollout: {stepPercentage: 0, gracePeriodSeconds: -1}
    defaultPort: 0
    image: ""
`)
	var paths []string
	for _, p := range problemsOf(t, err) {
		paths = append(paths, p.Path)
	}
	want := []string{
		"containers.box.image", "containers.box.defaultPort",
		"containers.box.rollout.stepPercentage", "containers.box.rollout.gracePeriodSeconds",
		"containers.box.maxInstances", "containers.box.instanceType",
		"containers.box.sleepAfter", "containers.box.hardTimeout", "containers.box.secrets[0]",
		"containers.box.requiredPorts", "containers.box.entrypoint", "containers.box.interceptHttps",
		"containers.box.pingEndpoint", "containers.box.labels.tier", "containers.box.readyOn[0].path",
	}
	if len(paths) != len(want) {
		t.Fatalf("got %d problems %q, want %d", len(paths), paths, len(want))
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Errorf("problem %d is on %s, want %s (all: %q)", i, paths[i], want[i], paths)
		}
	}
}
