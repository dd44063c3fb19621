package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lunora/lunorad/internal/config"
)

func validateCmd() *cobra.Command {
	var configPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file and list every problem in it (exit 1 if any)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			cfg, warnings, err := config.Load(configPath, config.LoadOptions{})
			var verr *config.ValidationError
			if err != nil && !errors.As(err, &verr) {
				return configError(configPath, err) // the file could not be read at all
			}
			if asJSON {
				report := struct {
					Config   string           `json:"config"`
					Valid    bool             `json:"valid"`
					Problems []config.Problem `json:"problems"`
					Warnings []config.Warning `json:"warnings"`
				}{Config: configPath, Valid: err == nil, Problems: []config.Problem{}, Warnings: warnings}
				if verr != nil {
					report.Problems = verr.Problems
				}
				if report.Warnings == nil {
					report.Warnings = []config.Warning{}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if encErr := enc.Encode(report); encErr != nil {
					return encErr
				}
				if err != nil {
					return exitError{code: 1}
				}
				return nil
			}
			for _, w := range warnings {
				fmt.Fprintf(out, "warning: %s\n", w)
			}
			if verr != nil {
				for _, p := range verr.Problems {
					fmt.Fprintln(out, p)
				}
				fmt.Fprintf(out, "%s: %d problem(s)\n", configPath, len(verr.Problems))
				return exitError{code: 1}
			}
			fmt.Fprintf(out, "%s: ok (%d container(s): %v)\n", configPath, len(cfg.Names), cfg.Names)
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", config.DefaultFileName, "config file (YAML or JSON)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
