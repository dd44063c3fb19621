package config

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// EffectiveJSON renders the configuration as the daemon uses it (defaults
// applied, paths resolved, readyOn ports filled in) as indented JSON with a
// stable key order. Secret values never appear, only their names.
func (c *Config) EffectiveJSON() ([]byte, error) {
	view := effectiveConfig{Path: c.Path, Listen: c.Listen, Containers: map[string]effectiveContainer{}}
	for name, ct := range c.Containers {
		view.Containers[name] = effective(ct)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // entrypoints hold shell text such as "a & b"
	if err := enc.Encode(view); err != nil {
		return nil, fmt.Errorf("render effective config: %w", err)
	}
	return buf.Bytes(), nil
}

type effectiveConfig struct {
	Path       string                        `json:"path"`
	Listen     string                        `json:"listen"`
	Containers map[string]effectiveContainer `json:"containers"`
}

// effectiveContainer mirrors Container with JSON names matching the config
// keys; unset options render as null so the defaults are visible.
type effectiveContainer struct {
	Line           int               `json:"line"`
	Binding        string            `json:"binding"`
	ClassName      string            `json:"className"`
	ApplicationID  string            `json:"applicationId"`
	Image          effectiveImage    `json:"image"`
	DefaultPort    *int              `json:"defaultPort"`
	RequiredPorts  []int             `json:"requiredPorts"`
	PortsToCheck   []int             `json:"portsToCheck"`
	PublishedPorts []int             `json:"publishedPorts"`
	InstanceType   InstanceType      `json:"instanceType"`
	MaxInstances   *int              `json:"maxInstances"`
	PoolSize       int               `json:"poolSize"`
	SleepAfter     string            `json:"sleepAfter"`
	HardTimeout    *string           `json:"hardTimeout"`
	Env            map[string]string `json:"env"`
	BuildArgs      map[string]string `json:"buildArgs"`
	Secrets        []string          `json:"secrets"`
	SecretsStore   map[string]string `json:"secretsStore"`
	Entrypoint     []string          `json:"entrypoint"`
	EnableInternet bool              `json:"enableInternet"`
	AllowedHosts   []string          `json:"allowedHosts"`
	DeniedHosts    []string          `json:"deniedHosts"`
	InterceptHTTPS bool              `json:"interceptHttps"`
	PingEndpoint   string            `json:"pingEndpoint"`
	Labels         map[string]string `json:"labels"`
	ReadyOn        []ReadyCheck      `json:"readyOn"`
	Name           *string           `json:"name"`
	Rollout        effectiveRollout  `json:"rollout"`
	Scheduling     *string           `json:"schedulingPolicy"`
	Sandbox        bool              `json:"sandbox"`
	Backups        *Backups          `json:"backups"`
}

type effectiveImage struct {
	Kind           ImageKind `json:"kind"`
	Source         string    `json:"source"`
	BuildContext   string    `json:"buildContext,omitempty"`
	DockerfilePath string    `json:"dockerfilePath,omitempty"`
	Reference      string    `json:"reference,omitempty"`
	BuildDir       string    `json:"buildDir,omitempty"`
}

type effectiveRollout struct {
	StepPercentage     *int `json:"stepPercentage"`
	GracePeriodSeconds *int `json:"gracePeriodSeconds"`
}

func effective(c *Container) effectiveContainer {
	e := effectiveContainer{
		Line:          c.Line,
		Binding:       BindingName(c.Name),
		ClassName:     ClassName(c.Name),
		ApplicationID: ApplicationID(c.Name),
		Image: effectiveImage{
			Kind: c.Image.Kind, Source: c.Image.Source, BuildContext: c.Image.BuildContext,
			DockerfilePath: c.Image.DockerfilePath, Reference: c.Image.Reference, BuildDir: c.Image.BuildDir,
		},
		DefaultPort:    nonZero(c.DefaultPort),
		RequiredPorts:  c.RequiredPorts,
		PortsToCheck:   c.PortsToCheck(),
		PublishedPorts: c.PublishedPorts(),
		InstanceType:   c.InstanceType,
		MaxInstances:   nonZero(c.MaxInstances),
		PoolSize:       c.PoolSize(),
		SleepAfter:     c.SleepAfter.String(),
		Env:            c.Env,
		BuildArgs:      c.BuildArgs,
		Secrets:        c.Secrets,
		SecretsStore:   c.SecretsStore,
		Entrypoint:     c.Entrypoint,
		EnableInternet: c.EnableInternet,
		AllowedHosts:   c.AllowedHosts,
		DeniedHosts:    c.DeniedHosts,
		InterceptHTTPS: c.InterceptHTTPS,
		PingEndpoint:   c.PingEndpoint,
		Labels:         c.Labels,
		ReadyOn:        c.ReadyOn,
		Name:           nonEmpty(c.DisplayName),
		Rollout:        effectiveRollout{StepPercentage: nonZero(c.Rollout.StepPercentage)},
		Scheduling:     nonEmpty(c.SchedulingPolicy),
		Sandbox:        c.Sandbox,
		Backups:        c.Backups,
	}
	if c.HardTimeout > 0 {
		s := c.HardTimeout.String()
		e.HardTimeout = &s
	}
	if c.Rollout.GracePeriodSeconds >= 0 {
		g := c.Rollout.GracePeriodSeconds
		e.Rollout.GracePeriodSeconds = &g
	}
	return e
}

func nonZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
