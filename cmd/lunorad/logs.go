package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/events"
)

func logsCmd() *cobra.Command {
	var configPath, addr string
	var asJSON, noReplay bool
	cmd := &cobra.Command{
		Use:   "logs [container [instance]]",
		Short: "Follow lifecycle events (start, stop, sleep, error, build) from a running daemon",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr = daemonAddr(addr, configPath)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			path := "/v1/events"
			if !noReplay {
				path += "?replay=1"
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return notRunning(addr, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", path, resp.Status)
			}
			err = followEvents(resp.Body, cmd.OutOrStdout(), args, asJSON)
			if ctx.Err() != nil {
				return nil // Ctrl-C
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", config.DefaultFileName, "config file, to find the daemon's address")
	cmd.Flags().StringVar(&addr, "addr", "", "daemon address (default: the config's listen)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as its JSON object")
	cmd.Flags().BoolVar(&noReplay, "no-replay", false, "only show events from now on")
	return cmd
}

// followEvents reads the SSE stream and prints the events that match filter
// ([container [instance]]).
func followEvents(r io.Reader, w io.Writer, filter []string, asJSON bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments (heartbeats), event names, blank separators
		}
		var e events.Event
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &e); err != nil {
			return fmt.Errorf("bad event from daemon: %w", err)
		}
		if len(filter) > 0 && e.Container != filter[0] || len(filter) > 1 && e.Instance != filter[1] {
			continue
		}
		if asJSON {
			fmt.Fprintln(w, strings.TrimSpace(data))
			continue
		}
		ts := time.UnixMilli(e.TS).Format("15:04:05.000")
		msg := e.Message
		if msg != "" {
			msg = "  " + msg
		}
		fmt.Fprintf(w, "%s %-6s %s/%s%s\n", ts, e.Event, e.Container, e.Instance, msg)
	}
	if err := sc.Err(); err != nil && err != context.Canceled {
		return err
	}
	return nil
}
