package config

import (
	"encoding/json"
)

// hashVersion changes whenever hashInput changes shape, so containers made
// by an older lunorad are recreated rather than adopted on a guess.
const hashVersion = 1

// hashInput is everything Hash covers: the fields that shape the running
// container or its image, so that a change to any of them needs a new
// container. Left out on purpose, because the daemon applies them without a
// recreate or they have no local effect: sleepAfter, hardTimeout,
// maxInstances, readyOn paths and statuses, pingEndpoint, rollout, name,
// schedulingPolicy, sandbox, backups, the YAML line, and secret values (only
// secret names are covered; a changed value takes effect on the next start).
type hashInput struct {
	Version int    `json:"v"`
	Name    string `json:"name"` // CLOUDFLARE_APPLICATION_ID and _DURABLE_OBJECT_ID derive from it
	Image   struct {
		Kind           ImageKind `json:"kind"`
		BuildContext   string    `json:"buildContext,omitempty"`
		DockerfilePath string    `json:"dockerfilePath,omitempty"`
		Reference      string    `json:"reference,omitempty"`
		BuildDir       string    `json:"buildDir,omitempty"`
	} `json:"image"`
	BuildArgs map[string]string `json:"buildArgs"`
	// Ports are the published ports: defaultPort, requiredPorts and the
	// readyOn ports, which all need a port binding on the container.
	Ports          []int             `json:"ports"`
	DefaultPort    int               `json:"defaultPort"`
	Env            map[string]string `json:"env"`
	Secrets        []string          `json:"secrets"`
	SecretsStore   map[string]string `json:"secretsStore"`
	Labels         map[string]string `json:"labels"`
	Entrypoint     []string          `json:"entrypoint"`
	VCPU           string            `json:"vcpu"` // text, so a NaN cannot fail the encoding
	MemoryMiB      int               `json:"memoryMib"`
	DiskMB         int               `json:"diskMb"`
	EnableInternet bool              `json:"enableInternet"`
	AllowedHosts   []string          `json:"allowedHosts"`
	DeniedHosts    []string          `json:"deniedHosts"`
	InterceptHTTPS bool              `json:"interceptHttps"`
}

// Hash is the sha256 (hex) of a canonical JSON encoding of the fields listed
// on hashInput. The supervisor stores it as a label so that a restarted
// daemon re-adopts a container only if its configuration is unchanged. It
// covers where the image comes from, not what the build produced: combine
// it with the image id to notice a rebuilt image.
func (c *Container) Hash() string {
	in := hashInput{
		Version:        hashVersion,
		Name:           c.Name,
		BuildArgs:      c.BuildArgs,
		Ports:          c.PublishedPorts(),
		DefaultPort:    c.DefaultPort,
		Env:            c.Env,
		Secrets:        c.Secrets,
		SecretsStore:   c.SecretsStore,
		Labels:         c.Labels,
		Entrypoint:     c.Entrypoint,
		VCPU:           jsNumber(c.InstanceType.VCPU),
		MemoryMiB:      c.InstanceType.MemoryMiB,
		DiskMB:         c.InstanceType.DiskMB,
		EnableInternet: c.EnableInternet,
		AllowedHosts:   c.AllowedHosts,
		DeniedHosts:    c.DeniedHosts,
		InterceptHTTPS: c.InterceptHTTPS,
	}
	in.Image.Kind = c.Image.Kind
	in.Image.BuildContext = c.Image.BuildContext
	in.Image.DockerfilePath = c.Image.DockerfilePath
	in.Image.Reference = c.Image.Reference
	in.Image.BuildDir = c.Image.BuildDir
	// Marshal cannot fail: the struct holds only strings, ints, bools, and
	// maps with string keys. encoding/json sorts map keys, which makes the
	// encoding canonical.
	data, err := json.Marshal(in)
	if err != nil {
		panic("config: hash input is not encodable: " + err.Error())
	}
	return hashHex(string(data))
}

// ID is a short, stable identity of this config file (12 hex characters of
// the sha256 of its absolute path). The supervisor puts it in container
// names and labels, so two configs never touch each other's containers.
func (c *Config) ID() string {
	return hashHex("lunorad/config\x00" + c.Path)[:12]
}
