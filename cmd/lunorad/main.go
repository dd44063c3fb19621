// Command lunorad runs Cloudflare Containers locally for Lunora apps: one
// Docker container per instance id, behind the HTTP API of PROTOCOL.md.
//
// This file only wires packages: flags, logger, signals. The daemon itself is
// internal/daemon.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set by the linker: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:           "lunorad",
		Short:         "Cloudflare Containers, locally, for Lunora apps",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCmd(), validateCmd(), psCmd(), logsCmd(), downCmd(), versionCmd())
	if err := root.Execute(); err != nil {
		var exit exitError
		if asExit(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "lunorad:", err)
		os.Exit(1)
	}
}

// exitError ends the process with code after its message (if any) is printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func asExit(err error, target *exitError) bool {
	e, ok := err.(exitError)
	if ok {
		*target = e
	}
	return ok
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lunorad's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "lunorad %s (contract v1)\n", version)
		},
	}
}
