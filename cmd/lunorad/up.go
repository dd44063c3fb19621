package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/daemon"
)

func upCmd() *cobra.Command {
	var (
		configPath      string
		listen          string
		logFormat       string
		logLevel        string
		noLimits        bool
		direct          bool
		fastPath        bool
		stopGrace       time.Duration
		readyTimeout    time.Duration
		shutdownTimeout time.Duration
		pprofAddr       string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the daemon on a config file and serve until Ctrl-C",
		Long: `Start the daemon on a config file and serve until Ctrl-C.

Container ports are published on 127.0.0.1 and lunorad proxies to them.
By default (--direct), once a container is ready lunorad also attaches it to
an internal bridge network it creates for this config (lunorad-<config id>,
removed on shutdown) and proxies to its address there, skipping Docker's
userland port proxy: warm requests get faster. The attach runs in the
background, so cold starts do not wait for it; requests use the published
ports until it is done. Where the host cannot route to that network (Docker
Desktop, a remote engine) or the attach fails, lunorad keeps using the
published ports. --direct=false uses only the published ports.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()

			cfg, secrets, err := loadConfig(configPath, log)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}

			// The first Ctrl-C or SIGTERM shuts down cleanly; a second one while
			// shutting down means "now": containers may be left behind, and the
			// next `up` (or `down`) removes them.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			finished := make(chan struct{})
			defer close(finished)
			go func() {
				select {
				case <-sigs:
					cancel()
				case <-ctx.Done():
					return
				}
				select {
				case <-sigs:
					log.Warn("second signal: exiting without cleanup; run `lunorad down` to remove containers")
					os.Exit(130)
				case <-finished:
				}
			}()
			if pprofAddr != "" {
				if err := servePprof(ctx, pprofAddr, log); err != nil {
					return err
				}
			}

			return daemon.Run(ctx, daemon.Options{
				Config:          cfg,
				Logger:          log,
				Secrets:         secrets,
				StopGrace:       stopGrace,
				ReadyTimeout:    readyTimeout,
				ShutdownTimeout: shutdownTimeout,
				NoLimits:        noLimits,
				DirectDial:      direct,
				NetHTTPOnly:     !fastPath,
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", config.DefaultFileName, "config file (YAML or JSON)")
	f.StringVar(&listen, "listen", "", "address to serve on, overriding `listen:` in the config")
	f.StringVar(&logFormat, "log-format", "console", "log format: console or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&noLimits, "no-limits", false, "do not apply instanceType CPU and memory limits (for slow machines)")
	f.BoolVar(&fastPath, "fast-path", true, "answer plain data-plane requests on a lean HTTP/1.1 path; --fast-path=false serves every request with Go's net/http server (same responses, more CPU per request)")
	f.BoolVar(&direct, "direct", true, "after a container is ready, also attach it to a bridge network lunorad creates and proxy to it there, skipping docker-proxy; --direct=false uses only the published ports")
	f.DurationVar(&stopGrace, "stop-grace", 10*time.Second, "time between SIGTERM and SIGKILL when stopping a container")
	f.DurationVar(&readyTimeout, "ready-timeout", 30*time.Second, "readiness deadline for required ports and readyOn checks")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may finish after Ctrl-C")
	f.StringVar(&pprofAddr, "pprof", "", "serve Go's pprof endpoints on this address (e.g. 127.0.0.1:6060); off by default")
	return cmd
}

func newLogger(format, level string) (*zap.Logger, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	var cfg zap.Config
	switch format {
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.Development = false
		cfg.DisableStacktrace = true
		cfg.EncoderConfig.EncodeTime = zapcoreTimeOnly
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.Sampling = nil
	default:
		return nil, fmt.Errorf("--log-format %q: use console or json", format)
	}
	cfg.Level = lvl
	cfg.DisableCaller = true
	return cfg.Build()
}
