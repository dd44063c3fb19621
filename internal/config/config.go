// Package config loads, validates and describes lunorad.yaml (PROTOCOL §1):
// every defineContainer option with @lunora/container's defaults and
// validation messages, strict parsing with line numbers, the secrets sources
// (.dev.vars, then the environment) and the hashes used for re-adoption.
package config

import (
	"sort"
	"time"
)

// Defaults that PROTOCOL §1 and the references fix.
const (
	DefaultListen     = "127.0.0.1:8790"
	DefaultSleepAfter = 10 * time.Minute // @cloudflare/containers DEFAULT_SLEEP_AFTER '10m'
	DefaultPoolSize   = 3                // any()/pool() size when maxInstances is unset
	DefaultFileName   = "lunorad.yaml"
	// DefaultPingEndpoint is @cloudflare/containers' pingEndpoint default.
	DefaultPingEndpoint = "ping"
)

// schedulingPolicy values (@lunora/container, newest).
const (
	SchedulingDefault       = "default"
	SchedulingDurableObject = "durable_object"
)

// Config is a loaded, validated lunorad.yaml. Relative paths in it are
// already resolved against Dir.
type Config struct {
	// Path is the absolute path of the file that was loaded.
	Path string
	// Dir is the folder of Path; relative paths and .dev.vars resolve here.
	Dir string
	// Listen is the address of the control and data plane.
	Listen string
	// Containers keyed by export name (as in lunora/containers.ts).
	Containers map[string]*Container
	// Names lists the keys of Containers, sorted, for stable iteration.
	Names []string
}

// ImageKind tells how a container's image is obtained.
type ImageKind string

const (
	// ImageDockerfile: build Image.DockerfilePath with Image.BuildContext.
	// Both a directory and a path to a Dockerfile* normalise to this kind.
	ImageDockerfile ImageKind = "dockerfile"
	// ImageRegistry: use Image.Reference (present locally, or pulled).
	ImageRegistry ImageKind = "registry"
	// ImageBuild: {build: dir}, Railpack builds; not supported locally yet.
	ImageBuild ImageKind = "build"
)

// Image is the normalised `image` option (Lunora's normalizeContainerImage).
type Image struct {
	Kind ImageKind
	// BuildContext is an absolute directory (ImageDockerfile).
	BuildContext string
	// DockerfilePath is absolute (ImageDockerfile).
	DockerfilePath string
	// Reference is the registry reference (ImageRegistry).
	Reference string
	// BuildDir is the source directory (ImageBuild), absolute.
	BuildDir string
	// Source is the value as written in the file, for messages.
	Source string
}

// InstanceType is a named or custom instance type with its resolved limits.
type InstanceType struct {
	// Name is "lite", "basic", "standard-1".."standard-4", or "" for custom.
	Name      string  `json:"name"`
	VCPU      float64 `json:"vcpu"`
	MemoryMiB int     `json:"memoryMib"`
	DiskMB    int     `json:"diskMb"`
}

// ReadyCheck is one readyOn probe. Port is resolved at load time: the
// check's own port, else the container's defaultPort.
type ReadyCheck struct {
	Path   string `json:"path"` // always starts with "/"
	Port   int    `json:"port"`
	Status int    `json:"status"` // default 200
}

// Rollout mirrors defineContainer's rollout option; it has no local effect.
type Rollout struct {
	StepPercentage     int // 0 = unset
	GracePeriodSeconds int // -1 = unset
}

// Backups mirrors the sandbox `backups` option; lunorad does not run backups.
type Backups struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
}

// Container is one container definition with defaults applied.
type Container struct {
	// Name is the export name (the key under containers:).
	Name  string
	Image Image
	// DefaultPort is 0 when unset.
	DefaultPort int
	// RequiredPorts as written; empty when unset.
	RequiredPorts []int
	InstanceType  InstanceType
	// MaxInstances is 0 when unset (then unlimited for get(), and the pool
	// size falls back to DefaultPoolSize).
	MaxInstances int
	// SleepAfter is DefaultSleepAfter when unset. It is 0 only when written
	// as "0s" (Lunora accepts it): sleep as soon as the instance is idle.
	SleepAfter time.Duration
	// HardTimeout is 0 when unset (no hard timeout).
	HardTimeout time.Duration
	Env         map[string]string
	// Secrets are names, resolved through a SecretSource at start.
	Secrets        []string
	SecretsStore   map[string]string // env name -> Secrets Store binding name
	BuildArgs      map[string]string
	Labels         map[string]string
	Entrypoint     []string
	EnableInternet bool // default true
	// AllowedHosts and DeniedHosts are nil when unset; an empty, non-nil
	// AllowedHosts was written as [] and allows no host (as on Cloudflare).
	AllowedHosts   []string
	DeniedHosts    []string
	InterceptHTTPS bool
	ReadyOn        []ReadyCheck
	// Options accepted for fidelity that have no local effect.
	PingEndpoint     string // default "ping"
	DisplayName      string // `name`
	Rollout          Rollout
	SchedulingPolicy string // "" when unset, else SchedulingDefault or SchedulingDurableObject
	Sandbox          bool
	Backups          *Backups // nil when unset

	// Line is the line of the container's key in the file (YAML or JSON).
	Line int
}

// PortsToCheck is the list of ports that must answer before the instance is
// ready: requiredPorts, else [defaultPort] (cloudflare-containers.md §3).
func (c *Container) PortsToCheck() []int {
	if len(c.RequiredPorts) > 0 {
		return append([]int(nil), c.RequiredPorts...)
	}
	if c.DefaultPort != 0 {
		return []int{c.DefaultPort}
	}
	return nil
}

// PublishedPorts is every container port lunorad must reach from the host:
// defaultPort, requiredPorts and the readyOn ports, sorted, without repeats.
func (c *Container) PublishedPorts() []int {
	seen := map[int]bool{}
	var ports []int
	add := func(p int) {
		if p != 0 && !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	add(c.DefaultPort)
	for _, p := range c.RequiredPorts {
		add(p)
	}
	for _, r := range c.ReadyOn {
		add(r.Port)
	}
	sort.Ints(ports)
	return ports
}

// PoolSize is the default size for any()/pool(): maxInstances, else 3.
func (c *Container) PoolSize() int {
	if c.MaxInstances > 0 {
		return c.MaxInstances
	}
	return DefaultPoolSize
}
