package main

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

func psCmd() *cobra.Command {
	var configPath, addr string
	cmd := &cobra.Command{
		Use:   "ps [container]",
		Short: "List the instances a running daemon knows, with their state and ports",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr = daemonAddr(addr, configPath)
			var names []string
			if len(args) == 1 {
				names = args
			} else {
				// The control plane wraps lists in an object: {"containers": [...]}.
				var list struct {
					Containers []struct {
						Name string `json:"name"`
					} `json:"containers"`
				}
				if err := apiGet(addr, "/v1/containers", &list); err != nil {
					return err
				}
				for _, c := range list.Containers {
					names = append(names, c.Name)
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER\tINSTANCE\tSTATUS\tPORTS\tGEN\tIN-FLIGHT\tUP\tCONTAINER ID")
			now := time.Now()
			for _, name := range names {
				var list struct {
					Instances []lifecycle.InstanceInfo `json:"instances"`
				}
				if err := apiGet(addr, "/v1/containers/"+url.PathEscape(name)+"/instances", &list); err != nil {
					return err
				}
				insts := list.Instances
				sort.Slice(insts, func(i, j int) bool { return insts[i].Instance < insts[j].Instance })
				for _, in := range insts {
					status := in.State.Status
					if in.State.ExitCode != nil {
						status += "(" + strconv.Itoa(*in.State.ExitCode) + ")"
					}
					up := "-"
					if !in.StartedAt.IsZero() && (status == "running" || status == "healthy") {
						up = now.Sub(in.StartedAt).Round(time.Second).String()
					}
					id := in.ContainerID
					if len(id) > 12 {
						id = id[:12]
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", name, in.Instance, status,
						formatPorts(in.Ports), in.Generation, in.InFlight, up, id)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", config.DefaultFileName, "config file, to find the daemon's address")
	cmd.Flags().StringVar(&addr, "addr", "", "daemon address (default: the config's listen)")
	return cmd
}

func formatPorts(ports map[int]string) string {
	if len(ports) == 0 {
		return "-"
	}
	keys := make([]int, 0, len(ports))
	for p := range ports {
		keys = append(keys, p)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, p := range keys {
		parts[i] = fmt.Sprintf("%s->%d", ports[p], p)
	}
	return strings.Join(parts, ",")
}
