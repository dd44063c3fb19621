package main

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// loadConfig loads and validates the config file and its secrets sources,
// logging each warning once.
func loadConfig(path string, log *zap.Logger) (*config.Config, lifecycle.SecretSource, error) {
	cfg, warnings, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not valid:\n%w", path, err)
	}
	for _, w := range warnings {
		log.Warn(w.Message, zap.String("field", w.Path), zap.Int("line", w.Line))
	}
	secrets, err := config.NewSecretSource(cfg.Dir)
	if err != nil {
		return nil, nil, err
	}
	return cfg, secrets, nil
}
