package main

import (
	"errors"
	"fmt"
	"io/fs"

	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// loadConfig loads and validates the config file and its secrets sources,
// logging each warning once.
func loadConfig(path string, log *zap.Logger) (*config.Config, lifecycle.SecretSource, error) {
	cfg, warnings, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		return nil, nil, configError(path, err)
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

// configError words a Load failure for the terminal: a refused file lists its
// problems; a file that cannot be read says how to point at one.
func configError(path string, err error) error {
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		return fmt.Errorf("%s is not valid:\n%w", path, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no config file at %s: create it (see configs/example/lunorad.yaml) or pass -c FILE", path)
	}
	return fmt.Errorf("cannot read config %s: %w", path, err)
}
