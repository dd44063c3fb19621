package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadAppliesDefaults(t *testing.T) {
	cfg, warnings := mustLoad(t, "containers:\n  hello:\n    image: ./app\n")
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if cfg.Listen != DefaultListen {
		t.Errorf("Listen = %q, want %q", cfg.Listen, DefaultListen)
	}
	c := cfg.Containers["hello"]
	want := &Container{
		Name: "hello",
		Image: Image{
			Kind:           ImageDockerfile,
			BuildContext:   filepath.Join(cfg.Dir, "app"),
			DockerfilePath: filepath.Join(cfg.Dir, "app", "Dockerfile"),
			Source:         "./app",
		},
		InstanceType:   InstanceType{Name: "lite", VCPU: 0.0625, MemoryMiB: 256, DiskMB: 2000},
		SleepAfter:     10 * time.Minute,
		EnableInternet: true,
		PingEndpoint:   "ping",
		Rollout:        Rollout{GracePeriodSeconds: -1},
		Line:           2,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("container:\n got %+v\nwant %+v", c, want)
	}
	if !filepath.IsAbs(cfg.Path) || filepath.Dir(cfg.Path) != cfg.Dir {
		t.Errorf("Path %q / Dir %q: want an absolute path inside Dir", cfg.Path, cfg.Dir)
	}
	if c.PoolSize() != DefaultPoolSize || c.PortsToCheck() != nil {
		t.Errorf("PoolSize %d, PortsToCheck %v", c.PoolSize(), c.PortsToCheck())
	}
}

func TestLoadResolvesRelativePathsAgainstTheConfigFolder(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"conf/lunorad.yaml":        "containers:\n  a:\n    image: ../images/a\n  b:\n    image: sub/Dockerfile.dev\n",
		"images/a/Dockerfile":      "FROM scratch\n",
		"conf/sub/Dockerfile.dev":  "FROM scratch\n",
		"elsewhere/not-the-cwd.md": "",
	})
	// Load from another working directory, through a relative path.
	t.Chdir(filepath.Join(dir, "elsewhere"))
	cfg, _, err := Load(filepath.Join("..", "conf", "lunorad.yaml"), LoadOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Containers["a"].Image.BuildContext, filepath.Join(dir, "images", "a"); got != want {
		t.Errorf("a: BuildContext = %q, want %q", got, want)
	}
	b := cfg.Containers["b"].Image
	if b.DockerfilePath != filepath.Join(dir, "conf", "sub", "Dockerfile.dev") || b.BuildContext != filepath.Join(dir, "conf", "sub") {
		t.Errorf("b: %+v", b)
	}
	if cfg.Dir != filepath.Join(dir, "conf") {
		t.Errorf("Dir = %q", cfg.Dir)
	}
}

func TestLoadReportsEveryProblemAtOnceWithLines(t *testing.T) {
	_, _, err := loadYAML(t, `listen: nowhere
containers:
  first:
    image: ./app
    defaultPort: 0
    maxInstances: many
  second:
    image: ./app
    sleepAfter: 1d
    readyOn: [{path: /ok}]
`)
	want := []Problem{
		{Path: "listen", Message: "`listen` must be host:port, e.g. 127.0.0.1:8790 (got \"nowhere\")", Line: 1},
		{Path: "containers.first.defaultPort", Message: "`defaultPort` must be an integer in 1–65535 (got 0)", Line: 5},
		{Path: "containers.first.maxInstances", Message: "`maxInstances` must be a positive integer (got \"many\")", Line: 6},
		{Path: "containers.second.sleepAfter", Message: "`sleepAfter` string \"1d\" must be a number of seconds followed by a unit, e.g. \"30s\", \"5m\", or \"1h\"", Line: 9},
		{Path: "containers.second.readyOn[0]", Message: "readyOn check \"/ok\" has no port — set the check's `port` or the container `defaultPort`.", Line: 10},
	}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadRefusesUnknownKeys(t *testing.T) {
	_, _, err := loadYAML(t, `listn: 127.0.0.1:1
containers:
  hello:
    image: ./app
    defaultPort: 8080

    defaultPrt: 8080
    readyOn: [{paht: /x}]
    instanceType: {cpu: 2}
    rollout: {steps: 2}
    image2: {registry: x}
  other:
    image: {registry: r, tag: latest}
    backups: {bucket: b, region: eu}
`)
	msg := err.Error()
	for _, line := range []string{
		"listn: unknown key; did you mean `listen`? (line 1)",
		"containers.hello.defaultPrt: unknown key; did you mean `defaultPort`? (line 7)",
		"containers.hello.readyOn[0].paht: unknown key; did you mean `path`? (line 8)",
		"containers.hello.instanceType.cpu: unknown key; did you mean `vcpu`? (line 9)",
		"containers.hello.rollout.steps: unknown key; expected one of stepPercentage, gracePeriodSeconds (line 10)",
		"containers.hello.image2: unknown key; did you mean `image`? (line 11)",
		"containers.other.image.tag: unknown key; expected one of registry, build (line 13)",
		"containers.other.backups.region: unknown key; expected one of bucket, prefix (line 14)",
	} {
		if !strings.Contains(msg, line+"\n") && !strings.HasSuffix(msg, line) {
			t.Errorf("missing %q in:\n%s", line, msg)
		}
	}
}

func TestLoadRefusesWronglyTypedValues(t *testing.T) {
	_, _, err := loadYAML(t, `containers:
  hello:
    image: ./app
    defaultPort: "abc"
    enableInternet: "no"
    env: [A, B]
    secrets: {A: B}
    labels: [x]
    readyOn: {path: /x}
    sandbox: 1
    name: 7
    schedulingPolicy: fast
    buildArgs: {V: 22}
    instanceType: [lite]
`)
	want := []Problem{
		{"containers.hello.defaultPort", "`defaultPort` must be an integer in 1–65535 (got \"abc\")", 4},
		{"containers.hello.instanceType", "`instanceType` must be one of basic, lite, standard-1, standard-2, standard-3, standard-4, or a custom { vcpu, memoryMib, diskMb } object (got a list)", 14},
		{"containers.hello.env", "`env` must be a mapping of variable names to string values (got a list)", 6},
		{"containers.hello.buildArgs.V", "`buildArgs` values must be strings (got 22); quote the value", 13},
		{"containers.hello.secrets", "`secrets` must be a list of secret names (got a mapping)", 7},
		{"containers.hello.enableInternet", "`enableInternet` must be a boolean, or omitted (got \"no\")", 5},
		{"containers.hello.labels", "`labels` must be a record of non-empty keys to string values", 8},
		{"containers.hello.readyOn", "`readyOn` must be a list of { path, port?, status? } checks (got a mapping)", 9},
		{"containers.hello.name", "`name` must be a non-empty string (got 7)", 11},
		{"containers.hello.schedulingPolicy", "`schedulingPolicy` must be \"default\" or \"durable_object\" (got \"fast\")", 12},
		{"containers.hello.sandbox", "`sandbox` must be a boolean, or omitted (got 1)", 10},
	}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadFileLevelProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       Problem
	}{
		{"syntax error", "containers:\n  hello: [1,\n", Problem{Message: "invalid YAML: did not find expected node content", Line: 2}},
		{"two documents", "containers: {}\n---\nlisten: 1.2.3.4:5\n", Problem{Message: "the file holds more than one YAML document; lunorad reads exactly one", Line: 2}},
		{"not a mapping", "- a\n- b\n", Problem{Message: "the file must be a mapping with the keys `listen` and `containers` (got a list)", Line: 1}},
		{"duplicate key", "containers:\n  a:\n    image: ./app\n    image: ./app\n", Problem{Path: "containers.a.image", Message: "duplicate key (first given on line 3)", Line: 4}},
		{"duplicate container", "containers:\n  a: {image: ./app}\n  a: {image: ./app}\n", Problem{Path: "containers.a", Message: "duplicate key (first given on line 2)", Line: 3}},
		{"containers not a mapping", "containers: [a]\n", Problem{Path: "containers", Message: "`containers` must be a mapping from export name to container options (got a list)", Line: 1}},
		{"container not a mapping", "containers:\n  a: ./app\n", Problem{Path: "containers.a", Message: "a container must be a mapping of defineContainer options (got \"./app\")", Line: 2}},
		{"image missing", "containers:\n  a:\n    defaultPort: 80\n", Problem{Path: "containers.a.image", Message: "`image` is required: a directory holding a Dockerfile, a path to a Dockerfile, or { registry: \"<reference>\" }", Line: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadYAML(t, tt.yaml)
			if got := problemsOf(t, err); len(got) != 1 || got[0] != tt.want {
				t.Errorf("problems:\n got %+v\nwant [%+v]", got, tt.want)
			}
		})
	}
}

func TestLoadZeroContainersIsValidButWarns(t *testing.T) {
	for name, content := range map[string]string{
		"empty file":      "",
		"comments only":   "# nothing yet\n",
		"null containers": "listen: 127.0.0.1:9000\ncontainers:\n",
		"empty mapping":   "containers: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, warnings := mustLoad(t, content)
			if len(cfg.Containers) != 0 || len(cfg.Names) != 0 {
				t.Errorf("containers: %v", cfg.Names)
			}
			if len(warnings) != 1 || warnings[0].Path != "containers" || !strings.Contains(warnings[0].Message, "no containers") {
				t.Errorf("warnings: %+v", warnings)
			}
		})
	}
}

func TestLoadJSON(t *testing.T) {
	const yamlSrc = `listen: "127.0.0.1:9999"
containers:
  hello:
    image: ./app
    defaultPort: 8080
    env: {A: "1"}
    readyOn: [{path: ready, status: 204}]
`
	const jsonSrc = `{
	"$schema": "..\/lunorad.schema.json",
	"listen": "127.0.0.1:9999",
	"containers": {
		"hello": {
			"image": "./app",
			"defaultPort": 8080.0,
			"env": {"A": "1"},
			"readyOn": [{"path": "ready", "status": 2.04e2}]
		}
	}
}`
	fromYAML, _ := mustLoad(t, yamlSrc)
	fromJSON, _, err := loadFile(t, "lunorad.json", jsonSrc)
	if err != nil {
		t.Fatal(err)
	}
	y, j := fromYAML.Containers["hello"], fromJSON.Containers["hello"]
	if j.Line != 5 {
		t.Errorf("JSON container line = %d, want 5", j.Line)
	}
	// Paths and lines differ; everything else must be the same.
	y.Image, j.Image = Image{}, Image{}
	y.Line, j.Line = 0, 0
	if !reflect.DeepEqual(y, j) || fromJSON.Listen != fromYAML.Listen {
		t.Errorf("JSON and YAML differ:\njson %+v\nyaml %+v", j, y)
	}
}

func TestLoadJSONProblemsHaveLines(t *testing.T) {
	_, _, err := loadFile(t, "c.json", "{\n  \"containers\": {\n    \"hello\": {\n      \"image\": \"./app\",\n      \"defaultPort\": \"80\",\n      \"sleepAfter\": true\n    }\n  }\n}\n")
	want := []Problem{
		{"containers.hello.defaultPort", "`defaultPort` must be an integer in 1–65535 (got \"80\")", 5},
		{"containers.hello.sleepAfter", "`sleepAfter` must be a positive integer number of seconds or a duration string like \"5m\" (got true)", 6},
	}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", got, want)
	}

	for name, tt := range map[string]struct {
		src  string
		line int
	}{
		"syntax":   {"{\n  \"containers\": {\n    \"a\": [1,,2]\n  }\n}", 3},
		"trailing": {"{\"containers\": {}}\n{}", 2},
		"empty":    {"", 1},
		"eof":      {"{\n  \"containers\": {", 2},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := loadFile(t, "c.json", tt.src)
			got := problemsOf(t, err)
			if len(got) != 1 || got[0].Line != tt.line || got[0].Path != "" {
				t.Errorf("problems: %+v, want one on line %d", got, tt.line)
			}
		})
	}
}

func TestLoadFollowsAliasesAndMergeKeys(t *testing.T) {
	cfg, _ := mustLoad(t, `containers:
  first: &base
    image: ./app
    defaultPort: 8080
    env: &env {A: "1", B: "2"}
  second:
    <<: *base
    defaultPort: 9090
    env:
      <<: *env
      B: "3"
`)
	second := cfg.Containers["second"]
	if second.DefaultPort != 9090 || second.Image.Source != "./app" {
		t.Errorf("second: port %d image %q", second.DefaultPort, second.Image.Source)
	}
	if want := map[string]string{"A": "1", "B": "3"}; !reflect.DeepEqual(second.Env, want) {
		t.Errorf("second.Env = %v, want %v", second.Env, want)
	}
}

func TestLoadListen(t *testing.T) {
	tests := []struct {
		listen  string
		problem string // "" = valid
	}{
		{"127.0.0.1:8790", ""},
		{"localhost:1234", ""},
		{"[::1]:8790", ""},
		{"0.0.0.0:80", ""},
		{"127.0.0.1:0", ""},
		{"example.com:80", "`listen` host \"example.com\" must be an IP address or localhost (write 0.0.0.0 to listen on every interface)"},
		{":8790", "`listen` host \"\" must be an IP address or localhost (write 0.0.0.0 to listen on every interface)"},
		{"127.0.0.1:http", "`listen` port \"http\" must be an integer in 0–65535 (0 picks a free port)"},
		{"127.0.0.1:70000", "`listen` port \"70000\" must be an integer in 0–65535 (0 picks a free port)"},
		{"127.0.0.1", "`listen` must be host:port, e.g. 127.0.0.1:8790 (got \"127.0.0.1\")"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			cfg, _, err := loadYAML(t, "listen: \""+tt.listen+"\"\ncontainers: {}\n")
			if tt.problem == "" {
				if err != nil || cfg.Listen != tt.listen {
					t.Fatalf("want %q accepted, got %v", tt.listen, err)
				}
				return
			}
			want := Problem{Path: "listen", Message: tt.problem, Line: 1}
			if got := problemsOf(t, err); len(got) != 1 || got[0] != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	_, _, err := loadYAML(t, "listen: 8790\n")
	if got := problemsOf(t, err); got[0].Message != "`listen` must be a host:port string such as 127.0.0.1:8790 (got 8790)" {
		t.Errorf("non-string listen: %+v", got)
	}
}

func TestLoadImageForms(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"dir/Dockerfile":        "FROM scratch\n",
		"dev/Dockerfile.dev":    "FROM scratch\n",
		"dev/Dockerfile":        "FROM scratch\n",
		"nodockerfile/":         "",
		"plainfile":             "",
		"Dockerfile.isadir/":    "",
		"railpack/package.json": "{}",
	})
	abs := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	tests := []struct {
		image   string
		want    Image
		problem string
	}{
		{image: "./dir", want: Image{Kind: ImageDockerfile, BuildContext: abs("dir"), DockerfilePath: abs("dir/Dockerfile"), Source: "./dir"}},
		{image: "dir/", want: Image{Kind: ImageDockerfile, BuildContext: abs("dir"), DockerfilePath: abs("dir/Dockerfile"), Source: "dir/"}},
		{image: abs("dir"), want: Image{Kind: ImageDockerfile, BuildContext: abs("dir"), DockerfilePath: abs("dir/Dockerfile"), Source: abs("dir")}},
		{image: "./dev/Dockerfile.dev", want: Image{Kind: ImageDockerfile, BuildContext: abs("dev"), DockerfilePath: abs("dev/Dockerfile.dev"), Source: "./dev/Dockerfile.dev"}},
		{image: "dev/Dockerfile", want: Image{Kind: ImageDockerfile, BuildContext: abs("dev"), DockerfilePath: abs("dev/Dockerfile"), Source: "dev/Dockerfile"}},
		{image: "{registry: docker.io/library/redis:7}", want: Image{Kind: ImageRegistry, Reference: "docker.io/library/redis:7", Source: "docker.io/library/redis:7"}},
		{image: "{build: ./railpack/}", want: Image{Kind: ImageBuild, BuildDir: abs("railpack"), Source: "./railpack/"}},
		{image: "./missing", problem: "`image` \"./missing\": the directory \"" + abs("missing") + "\" does not exist"},
		{image: "./nodockerfile", problem: "`image` \"./nodockerfile\": no Dockerfile at \"" + abs("nodockerfile/Dockerfile") + "\""},
		{image: "./plainfile", problem: "`image` \"./plainfile\": \"" + abs("plainfile") + "\" is not a directory; name a directory holding a Dockerfile, or a path to a Dockerfile"},
		{image: "./dev/Dockerfile.prod", problem: "`image` \"./dev/Dockerfile.prod\": no Dockerfile at \"" + abs("dev/Dockerfile.prod") + "\""},
		{image: "./Dockerfile.isadir", problem: "`image` \"./Dockerfile.isadir\": \"" + abs("Dockerfile.isadir") + "\" is a directory, not a Dockerfile"},
		{image: "{build: ./nope}", problem: "`image.build` \"./nope\": the directory \"" + abs("nope") + "\" does not exist"},
		{image: "{registry: \"redis :7\"}", problem: "`image.registry` \"redis :7\" must not contain whitespace"},
		{image: "{registry: a, build: b}", problem: "`image` takes either `build` or `registry`, not both"},
		{image: "42", problem: "`image` must be a non-empty path or a { registry } reference"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			path := filepath.Join(dir, "lunorad.yaml")
			if err := os.WriteFile(path, []byte("containers:\n  box:\n    image: "+tt.image+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := Load(path, LoadOptions{LookupEnv: noEnv})
			if tt.problem != "" {
				got := problemsOf(t, err)
				if len(got) != 1 || got[0].Message != tt.problem || got[0].Line != 3 {
					t.Errorf("got %+v\nwant message %q", got, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Containers["box"].Image; got != tt.want {
				t.Errorf("image:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadInstanceTypes(t *testing.T) {
	for _, name := range []string{"lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4"} {
		cfg, _ := mustLoad(t, oneContainer("    instanceType: "+name+"\n"))
		want, _ := LookupInstanceType(name)
		if got := cfg.Containers["box"].InstanceType; got != want || got.Name != name {
			t.Errorf("%s: got %+v", name, got)
		}
	}
	if it, _ := LookupInstanceType("standard-2"); it.NanoCPUs() != 1e9 || it.MemoryBytes() != 6144<<20 || it.DiskMB != 12000 {
		t.Errorf("standard-2 limits: %+v", it)
	}
	if it, _ := LookupInstanceType("lite"); it.NanoCPUs() != 62_500_000 {
		t.Errorf("lite NanoCPUs = %d", it.NanoCPUs())
	}

	cfg, _ := mustLoad(t, oneContainer("    instanceType: {vcpu: 1.5, memoryMib: 4608}\n"))
	if got, want := cfg.Containers["box"].InstanceType, (InstanceType{VCPU: 1.5, MemoryMiB: 4608, DiskMB: 2000}); got != want {
		t.Errorf("custom: got %+v, want %+v", got, want)
	}
	cfg, _ = mustLoad(t, oneContainer("    instanceType: {}\n"))
	if got, want := cfg.Containers["box"].InstanceType, (InstanceType{VCPU: 0.0625, MemoryMiB: 256, DiskMB: 2000}); got != want {
		t.Errorf("empty custom takes Cloudflare's defaults: got %+v", got)
	}

	tests := []struct {
		yaml string
		want Problem
	}{
		{"{vcpu: 0.5}", Problem{"containers.box.instanceType.vcpu", "`instanceType.vcpu` must be a number in 1–4 (got 0.5); below 1 vCPU use the named lite or basic type", 4}},
		{"{vcpu: 8, memoryMib: 12288}", Problem{"containers.box.instanceType.vcpu", "`instanceType.vcpu` must be a number in 1–4 (got 8); below 1 vCPU use the named lite or basic type", 4}},
		{"{memoryMib: 0}", Problem{"containers.box.instanceType.memoryMib", "`instanceType.memoryMib` must be an integer in 1–12288 (got 0)", 4}},
		{"{memoryMib: 16384}", Problem{"containers.box.instanceType.memoryMib", "`instanceType.memoryMib` must be an integer in 1–12288 (got 16384)", 4}},
		{"{diskMb: 20001}", Problem{"containers.box.instanceType.diskMb", "`instanceType.diskMb` must be an integer in 1–20000 (got 20001)", 4}},
		{"{diskMb: 1.5}", Problem{"containers.box.instanceType.diskMb", "`instanceType.diskMb` must be an integer in 1–20000 (got 1.5)", 4}},
		{"{vcpu: 2, memoryMib: 4096}", Problem{"containers.box.instanceType.memoryMib", "`instanceType.memoryMib` must be at least 3072 MiB per vCPU: 2 vCPU needs at least 6144 MiB (got 4096)", 4}},
		{"{vcpu: 1}", Problem{"containers.box.instanceType", "`instanceType.memoryMib` must be at least 3072 MiB per vCPU: 1 vCPU needs at least 3072 MiB (got 256)", 4}},
		{"7", Problem{"containers.box.instanceType", "unknown `instanceType` \"7\" — use one of basic, lite, standard-1, standard-2, standard-3, standard-4, or a custom { vcpu, memoryMib, diskMb } object", 4}},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			_, _, err := loadYAML(t, oneContainer("    instanceType: "+tt.yaml+"\n"))
			if got := problemsOf(t, err); len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadDurations(t *testing.T) {
	tests := map[string]time.Duration{
		"1":     time.Second,
		"90":    90 * time.Second,
		"30s":   30 * time.Second,
		"5m":    5 * time.Minute,
		"2h":    2 * time.Hour,
		"0s":    0, // Lunora accepts it: sleep as soon as idle
		"120.0": 2 * time.Minute,
	}
	for in, want := range tests {
		cfg, _ := mustLoad(t, oneContainer("    sleepAfter: "+in+"\n    hardTimeout: "+in+"\n"))
		c := cfg.Containers["box"]
		if c.SleepAfter != want || c.HardTimeout != want {
			t.Errorf("%s: sleepAfter %v hardTimeout %v, want %v", in, c.SleepAfter, c.HardTimeout, want)
		}
	}
	_, warnings := mustLoad(t, oneContainer("    hardTimeout: 0m\n"))
	if len(warnings) != 1 || warnings[0].Path != "containers.box.hardTimeout" || !strings.Contains(warnings[0].Message, "no hard timeout") {
		t.Errorf("hardTimeout 0m: warnings %+v", warnings)
	}
	_, _, err := loadYAML(t, oneContainer("    hardTimeout: 99999999999999h\n"))
	if got := problemsOf(t, err); got[0].Message != "`hardTimeout` is too long (at most 2562047h)" {
		t.Errorf("overflow: %+v", got)
	}
}

func TestLoadReadyOnNormalisation(t *testing.T) {
	cfg, _ := mustLoad(t, oneContainer(`    defaultPort: 8080
    requiredPorts: [8080, 9090]
    readyOn:
      - path: ready
      - {path: /live, port: 9090, status: 204}
      - {path: "/q?full=1", port: 7070}
`))
	c := cfg.Containers["box"]
	want := []ReadyCheck{{"/ready", 8080, 200}, {"/live", 9090, 204}, {"/q?full=1", 7070, 200}}
	if !reflect.DeepEqual(c.ReadyOn, want) {
		t.Errorf("ReadyOn = %+v, want %+v", c.ReadyOn, want)
	}
	if got := c.PublishedPorts(); !reflect.DeepEqual(got, []int{7070, 8080, 9090}) {
		t.Errorf("PublishedPorts = %v", got)
	}
	if got := c.PortsToCheck(); !reflect.DeepEqual(got, []int{8080, 9090}) {
		t.Errorf("PortsToCheck = %v", got)
	}
}

func TestLoadLabelLimits(t *testing.T) {
	var many strings.Builder
	many.WriteString("    labels:\n")
	for i := range 11 {
		many.WriteString("      k" + string(rune('a'+i)) + ": v\n")
	}
	_, _, err := loadYAML(t, oneContainer(many.String()))
	want := Problem{"containers.box.labels", "`labels` has 11 entries; Cloudflare allows at most 10", 5}
	if got := problemsOf(t, err); len(got) != 1 || got[0] != want {
		t.Errorf("11 labels: got %+v", got)
	}

	long := strings.Repeat("v", 65)
	_, _, err = loadYAML(t, oneContainer("    labels:\n      exactly16bytes__: ok\n      seventeen-bytes-k: x\n      team: "+long+"\n"))
	wantAll := []Problem{
		{"containers.box.labels.seventeen-bytes-k", "`labels` key \"seventeen-bytes-k\" is 17 bytes long; Cloudflare allows at most 16", 6},
		{"containers.box.labels.team", "`labels` value of \"team\" is 65 bytes long; Cloudflare allows at most 64", 7},
	}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, wantAll) {
		t.Errorf("long labels:\n got %+v\nwant %+v", got, wantAll)
	}
}

func TestLoadContainerNames(t *testing.T) {
	for _, good := range []string{"hello", "imageResizer", "_private", "$dollar", "ffmpeg2Pass", "A"} {
		if _, _, err := loadYAML(t, "containers:\n  "+good+":\n    image: ./app\n"); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for bad, msg := range map[string]string{
		"my-box": "container name \"my-box\" must be a JavaScript identifier (letters, digits, _ and $, not starting with a digit): it is the export name in lunora/containers.ts",
		"2fast":  "container name \"2fast\" must be a JavaScript identifier (letters, digits, _ and $, not starting with a digit): it is the export name in lunora/containers.ts",
		"class":  "container name \"class\" is a reserved word in JavaScript and cannot be an export name",
	} {
		_, _, err := loadYAML(t, "containers:\n  "+bad+":\n    image: ./app\n")
		want := Problem{Path: "containers." + bad, Message: msg, Line: 2}
		if got := problemsOf(t, err); len(got) != 1 || got[0] != want {
			t.Errorf("%q: got %+v", bad, got)
		}
	}
}

func TestLoadRefusesBindingCollisions(t *testing.T) {
	_, _, err := loadYAML(t, `containers:
  image_resizer:
    image: ./app
  imageResizer:
    image: ./app
  IMAGE_RESIZER:
    image: ./app
`)
	want := []Problem{
		{"containers.imageResizer", "containers \"IMAGE_RESIZER\" and \"imageResizer\" both map to the binding CONTAINER_IMAGE_RESIZER", 4},
		{"containers.image_resizer", "containers \"IMAGE_RESIZER\" and \"image_resizer\" both map to the binding CONTAINER_IMAGE_RESIZER", 2},
	}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	_, _, err = loadYAML(t, "containers:\n  imageResizer: {image: ./app}\n  image_resizer: {image: ./app}\n")
	if got := err.Error(); got != "containers.image_resizer: containers \"imageResizer\" and \"image_resizer\" both map to the binding CONTAINER_IMAGE_RESIZER (line 3)" {
		t.Errorf("codegen's message: %s", got)
	}
}

func TestLoadWarnings(t *testing.T) {
	t.Run("egress only when it differs from the defaults", func(t *testing.T) {
		_, warnings := mustLoad(t, oneContainer("    enableInternet: true\n    interceptHttps: false\n"))
		if len(warnings) != 0 {
			t.Errorf("defaults written out: %v", warnings)
		}
		_, warnings = mustLoad(t, oneContainer("    enableInternet: false\n    allowedHosts: []\n    deniedHosts: [\"*.evil.com\"]\n    interceptHttps: true\n"))
		var paths []string
		for _, w := range warnings {
			if w.Message != egressNotEnforced {
				t.Errorf("message %q", w.Message)
			}
			paths = append(paths, w.Path)
		}
		want := []string{"containers.box.enableInternet", "containers.box.allowedHosts", "containers.box.deniedHosts", "containers.box.interceptHttps"}
		if !reflect.DeepEqual(paths, want) {
			t.Errorf("warned on %v, want %v", paths, want)
		}
	})
	t.Run("egress enforced", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"app/Dockerfile": "", "lunorad.yaml": oneContainer("    enableInternet: false\n")})
		_, warnings, err := Load(filepath.Join(dir, "lunorad.yaml"), LoadOptions{LookupEnv: noEnv, EgressEnforced: true})
		if err != nil || len(warnings) != 0 {
			t.Errorf("err %v, warnings %v", err, warnings)
		}
	})
	t.Run("options lunorad does not run", func(t *testing.T) {
		_, warnings := mustLoad(t, `containers:
  reg:
    image: {registry: docker.io/library/redis:7}
    buildArgs: {V: "1"}
  rail:
    image: {build: ./app}
    sandbox: true
    backups: {bucket: b}
    schedulingPolicy: durable_object
`)
		var got []string
		for _, w := range warnings {
			got = append(got, w.Path)
		}
		want := []string{"containers.reg.buildArgs", "containers.rail.image", "containers.rail.sandbox", "containers.rail.backups", "containers.rail.schedulingPolicy"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("warned on %v, want %v", got, want)
		}
	})
	t.Run("missing secrets", func(t *testing.T) {
		dir := writeTree(t, map[string]string{
			"app/Dockerfile": "",
			".dev.vars":      "FROM_FILE=x\n",
			"lunorad.yaml":   oneContainer("    secrets: [FROM_FILE, FROM_ENV, NOWHERE]\n"),
		})
		env := func(name string) (string, bool) { return "y", name == "FROM_ENV" }
		_, warnings, err := Load(filepath.Join(dir, "lunorad.yaml"), LoadOptions{LookupEnv: env})
		if err != nil {
			t.Fatal(err)
		}
		want := []Warning{{Path: "containers.box.secrets[2]", Line: 4,
			Message: "declared secret \"NOWHERE\" is not set in .dev.vars or the environment; starting this container will fail"}}
		if !reflect.DeepEqual(warnings, want) {
			t.Errorf("got %+v\nwant %+v", warnings, want)
		}
	})
	t.Run("unreadable .dev.vars", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"app/Dockerfile": "", ".dev.vars": "TOKEN\n", "lunorad.yaml": oneContainer("    secrets: [TOKEN]\n")})
		_, warnings, err := Load(filepath.Join(dir, "lunorad.yaml"), LoadOptions{LookupEnv: noEnv})
		if err != nil || len(warnings) != 1 || warnings[0].Path != ".dev.vars" || !strings.Contains(warnings[0].Message, "line 1: expected KEY=VALUE") {
			t.Errorf("err %v, warnings %+v", err, warnings)
		}
	})
}

func TestLoadUnreadableFileIsNotAValidationError(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), LoadOptions{})
	var verr *ValidationError
	if err == nil || errors.As(err, &verr) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v", err)
	}
}

func TestValidationErrorRendering(t *testing.T) {
	err := &ValidationError{Problems: []Problem{
		{Path: "containers.hello.defaultPrt", Message: "unknown key", Line: 7},
		{Path: "listen", Message: "bad"},
		{Message: "invalid YAML: oops", Line: 2},
	}}
	want := "containers.hello.defaultPrt: unknown key (line 7)\nlisten: bad\ninvalid YAML: oops (line 2)"
	if err.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", err.Error(), want)
	}
	if w := (Warning{Path: "a", Message: "b", Line: 3}); w.String() != "a: b (line 3)" {
		t.Errorf("warning: %s", w)
	}
}

// aliasBomb is a small file whose merge keys expand to 3^25 entries.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("x0: &a0 {k: v}\n")
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [*a%d, *a%d, *a%d]}\n", i, i, i-1, i-1, i-1)
	}
	b.WriteString("containers:\n  c:\n    <<: *a25\n    image: ./app\n")
	return b.String()
}

func TestLoadRefusesAliasBombs(t *testing.T) {
	_, _, err := loadYAML(t, aliasBomb())
	var found bool
	for _, p := range problemsOf(t, err) {
		found = found || strings.HasPrefix(p.Message, "the file expands to more than 262144 keys and list items")
	}
	if !found {
		t.Errorf("want the expansion refused; got:\n%v", err)
	}
}
