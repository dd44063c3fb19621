package lifecycle

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/lunora/lunorad/internal/config"
)

// Values of the CLOUDFLARE_* variables that are the same everywhere locally:
// stable and obviously local (PROTOCOL §4).
const (
	localCountry  = "XX"
	localLocation = "loc01"
	localRegion   = "local"
)

// resolveEnv builds the container's environment: configured env, secrets
// and Secrets Store values (or opts.EnvVars instead of all three), plus the
// CLOUDFLARE_* variables. Values are never logged.
func (m *Manager) resolveEnv(inst *instance, opts StartOptions) (map[string]string, error) {
	c := inst.cfg
	env := make(map[string]string)
	if opts.EnvVars != nil {
		maps.Copy(env, opts.EnvVars)
	} else {
		maps.Copy(env, c.Env)
		for _, name := range c.Secrets {
			v, ok := m.lookupSecret(name)
			if !ok {
				// Lunora's resolveContainerEnvVars text, exactly.
				return nil, fmt.Errorf("container %q: declared secret %q is not set on the Worker environment. "+
					"Add it to .dev.vars for local dev and run `wrangler secret put %s` for production.", c.Name, name, name)
			}
			env[name] = v
		}
		store, err := m.secretsStoreValues(inst)
		if err != nil {
			return nil, err
		}
		maps.Copy(env, store)
	}
	env["CLOUDFLARE_APPLICATION_ID"] = config.ApplicationID(c.Name)
	env["CLOUDFLARE_COUNTRY_A2"] = localCountry
	env["CLOUDFLARE_LOCATION"] = localLocation
	env["CLOUDFLARE_REGION"] = localRegion
	env["CLOUDFLARE_DURABLE_OBJECT_ID"] = config.DurableObjectID(c.Name, inst.id)
	return env, nil
}

func (m *Manager) lookupSecret(name string) (string, bool) {
	if m.secrets == nil {
		return "", false
	}
	return m.secrets.Lookup(name)
}

// secretsStoreValues resolves secretsStore (env name → binding) once per
// instance, as Lunora memoises it; a failure clears the memo so the next
// start looks again.
func (m *Manager) secretsStoreValues(inst *instance) (map[string]string, error) {
	c := inst.cfg
	if len(c.SecretsStore) == 0 {
		return nil, nil
	}
	m.mu.Lock()
	memo := inst.storeMemo
	m.mu.Unlock()
	if memo != nil {
		return memo, nil
	}
	values := make(map[string]string, len(c.SecretsStore))
	for _, envName := range slices.Sorted(maps.Keys(c.SecretsStore)) {
		binding := c.SecretsStore[envName]
		v, ok := m.lookupSecret(binding)
		if !ok {
			m.mu.Lock()
			inst.storeMemo = nil
			m.mu.Unlock()
			return nil, fmt.Errorf("container %q: secretsStore env %q points at binding %q, which is not a Secrets Store binding on the Worker env. "+
				"Add a `secrets_store_secrets` entry binding %q.", c.Name, envName, binding, binding)
		}
		values[envName] = v
	}
	m.mu.Lock()
	inst.storeMemo = values
	m.mu.Unlock()
	return values, nil
}

// runSpec describes the container for one run.
func (m *Manager) runSpec(inst *instance, opts StartOptions, image string, env map[string]string, gen uint64) RunSpec {
	c := inst.cfg
	entrypoint := slices.Clone(c.Entrypoint)
	if len(opts.Entrypoint) > 0 {
		entrypoint = slices.Clone(opts.Entrypoint)
	}
	labels := maps.Clone(c.Labels)
	if len(opts.Labels) > 0 {
		if labels == nil {
			labels = make(map[string]string, len(opts.Labels))
		}
		maps.Copy(labels, opts.Labels)
	}
	m.mu.Lock()
	if opts.EnableInternet != nil {
		// The instance's egress state follows what this start asked for.
		inst.egress.EnableInternet = *opts.EnableInternet
	}
	enableInternet := inst.egress.EnableInternet
	m.mu.Unlock()
	spec := RunSpec{
		Container:      c.Name,
		Instance:       inst.id,
		Image:          image,
		Env:            env,
		Entrypoint:     entrypoint,
		Labels:         labels,
		Ports:          c.PublishedPorts(), // the runtime adds the image's EXPOSEd ports
		ConfigHash:     c.Hash(),
		Generation:     gen,
		EnableInternet: enableInternet,
	}
	if m.limits {
		spec.NanoCPUs = int64(math.Round(c.InstanceType.VCPU * 1e9))
		spec.MemoryBytes = int64(c.InstanceType.MemoryMiB) << 20
	}
	return spec
}
