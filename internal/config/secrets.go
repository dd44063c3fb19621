package config

import (
	"fmt"
	"os"
)

// SecretSource resolves the values of `secrets` (and Secrets Store binding
// names) the way wrangler dev does: .dev.vars beside the config first, then
// the process environment. It never renders a value: printing it with any
// fmt verb shows only how many names .dev.vars holds. Its methods take a
// value receiver so that a copy prints as safely as a pointer.
type SecretSource struct {
	devVars   map[string]string
	lookupEnv func(string) (string, bool)
}

// NewSecretSource reads dir/.dev.vars (a missing file is fine) and falls
// back to the process environment.
func NewSecretSource(dir string) (*SecretSource, error) {
	devVars, err := LoadDevVars(dir)
	if err != nil {
		return nil, err
	}
	return NewSecretSourceFrom(devVars, nil), nil
}

// NewSecretSourceFrom builds a source from parsed .dev.vars and an
// environment lookup; nil lookupEnv means os.LookupEnv.
func NewSecretSourceFrom(devVars map[string]string, lookupEnv func(string) (string, bool)) *SecretSource {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	vars := make(map[string]string, len(devVars))
	for k, v := range devVars {
		vars[k] = v
	}
	return &SecretSource{devVars: vars, lookupEnv: lookupEnv}
}

// Lookup returns the value of name from .dev.vars, else the environment.
func (s SecretSource) Lookup(name string) (string, bool) {
	if v, ok := s.devVars[name]; ok {
		return v, true
	}
	if s.lookupEnv == nil { // a zero SecretSource
		return os.LookupEnv(name)
	}
	return s.lookupEnv(name)
}

// String describes the source without any value.
func (s SecretSource) String() string {
	return fmt.Sprintf("SecretSource(%s: %d names, then the environment)", DevVarsFileName, len(s.devVars))
}

// GoString keeps %#v from printing the map of values.
func (s SecretSource) GoString() string { return s.String() }

// Format makes every verb (%v, %+v, %d, ...) print String, never the fields.
func (s SecretSource) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }
