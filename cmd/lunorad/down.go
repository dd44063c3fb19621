package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/supervisor"
)

func downCmd() *cobra.Command {
	var configPath string
	var images bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove every container lunorad owns for this config (also after a crash or kill -9)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := config.Load(configPath, config.LoadOptions{})
			if err != nil {
				return configError(configPath, err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			docker, err := supervisor.New(ctx, supervisor.Options{ConfigID: cfg.ID(), Logger: zap.NewNop()})
			if err != nil {
				return err
			}
			defer docker.Close()
			owned, err := docker.ListOwned(ctx)
			if err != nil {
				return err
			}
			if err := docker.RemoveAllOwned(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d container(s) owned by %s\n", len(owned), cfg.Path)
			if images {
				n, err := docker.RemoveImages(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %d image(s) built for %s\n", n, cfg.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", config.DefaultFileName, "config file (YAML or JSON)")
	cmd.Flags().BoolVar(&images, "images", false, "also remove the images lunorad built for this config (the next up rebuilds them)")
	return cmd
}
