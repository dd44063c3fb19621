package lifecycle

import (
	"fmt"
	"slices"
	"strings"
)

// EgressPolicy is one instance's outbound policy (GET .../{id}/egress). It
// starts from the container's configuration and then follows the egress
// calls and StartOptions.EnableInternet; like Cloudflare's stored outbound
// configuration it outlives a run. Deciding a request is the egress proxy's
// job, not this package's. An empty list means no list.
type EgressPolicy struct {
	EnableInternet bool     `json:"enableInternet"`
	AllowedHosts   []string `json:"allowedHosts"`
	DeniedHosts    []string `json:"deniedHosts"`
}

func (p EgressPolicy) clone() EgressPolicy {
	return EgressPolicy{
		EnableInternet: p.EnableInternet,
		AllowedHosts:   nonNil(p.AllowedHosts),
		DeniedHosts:    nonNil(p.DeniedHosts),
	}
}

// Egress returns the instance's outbound policy.
func (m *Manager) Egress(container, id string) (EgressPolicy, error) {
	var p EgressPolicy
	err := m.withEgress(container, id, func(e *EgressPolicy) error { p = e.clone(); return nil })
	return p, err
}

// AllowHost adds a host pattern to allowedHosts (egress.allow).
func (m *Manager) AllowHost(container, id, host string) error {
	return m.editList(container, id, host, func(e *EgressPolicy) *[]string { return &e.AllowedHosts }, true)
}

// DenyHost adds a host pattern to deniedHosts (egress.deny).
func (m *Manager) DenyHost(container, id, host string) error {
	return m.editList(container, id, host, func(e *EgressPolicy) *[]string { return &e.DeniedHosts }, true)
}

// RemoveAllowedHost removes a host pattern from allowedHosts (egress.removeAllowed).
func (m *Manager) RemoveAllowedHost(container, id, host string) error {
	return m.editList(container, id, host, func(e *EgressPolicy) *[]string { return &e.AllowedHosts }, false)
}

// RemoveDeniedHost removes a host pattern from deniedHosts (egress.removeDenied).
func (m *Manager) RemoveDeniedHost(container, id, host string) error {
	return m.editList(container, id, host, func(e *EgressPolicy) *[]string { return &e.DeniedHosts }, false)
}

// SetAllowedHosts replaces allowedHosts (egress.setAllowed).
func (m *Manager) SetAllowedHosts(container, id string, hosts []string) error {
	return m.setList(container, id, hosts, func(e *EgressPolicy) *[]string { return &e.AllowedHosts })
}

// SetDeniedHosts replaces deniedHosts (egress.setDenied).
func (m *Manager) SetDeniedHosts(container, id string, hosts []string) error {
	return m.setList(container, id, hosts, func(e *EgressPolicy) *[]string { return &e.DeniedHosts })
}

func (m *Manager) editList(container, id, host string, list func(*EgressPolicy) *[]string, add bool) error {
	pattern, err := normaliseHostPattern(host)
	if err != nil {
		return err
	}
	return m.withEgress(container, id, func(e *EgressPolicy) error {
		l := list(e)
		i := slices.Index(*l, pattern)
		switch {
		case add && i < 0:
			*l = append(*l, pattern)
		case !add && i >= 0:
			*l = slices.Delete(*l, i, i+1)
		}
		return nil
	})
}

func (m *Manager) setList(container, id string, hosts []string, list func(*EgressPolicy) *[]string) error {
	patterns := make([]string, 0, len(hosts))
	for _, h := range hosts {
		p, err := normaliseHostPattern(h)
		if err != nil {
			return err
		}
		if !slices.Contains(patterns, p) {
			patterns = append(patterns, p)
		}
	}
	return m.withEgress(container, id, func(e *EgressPolicy) error {
		*list(e) = patterns
		return nil
	})
}

// withEgress runs fn on the instance's policy under the lock, creating the
// instance entry if needed (a policy can be set before the first start).
func (m *Manager) withEgress(container, id string, fn func(*EgressPolicy) error) error {
	c, err := m.container(container)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(&m.instanceLocked(c, id).egress)
}

// normaliseHostPattern lower-cases a pattern and drops trailing dots, the
// way hosts are compared (PROTOCOL §5); an empty one is refused.
func normaliseHostPattern(host string) (string, error) {
	p := strings.TrimRight(strings.ToLower(strings.TrimSpace(host)), ".")
	if p == "" {
		return "", fmt.Errorf("%w: empty host pattern", ErrInvalidArgument)
	}
	return p, nil
}
