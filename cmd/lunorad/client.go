package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/lunora/lunorad/internal/config"
)

// zapcoreTimeOnly prints wall-clock time without the date: a dev daemon's
// log is read live, and the date is noise there.
func zapcoreTimeOnly(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	enc.AppendString(t.Format("15:04:05.000"))
}

// daemonAddr picks the daemon's address: the flag, else the config's
// `listen:` when the file loads, else the default.
func daemonAddr(flagAddr, configPath string) string {
	if flagAddr != "" {
		return flagAddr
	}
	if cfg, _, err := config.Load(configPath, config.LoadOptions{}); err == nil && cfg.Listen != "" {
		return cfg.Listen
	}
	return config.DefaultListen
}

// apiGet fetches a control-plane path and decodes the JSON answer into out.
func apiGet(addr, path string, out any) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return notRunning(addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return errors.New(e.Error.Message)
		}
		return fmt.Errorf("%s answered %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

func notRunning(addr string, err error) error {
	return fmt.Errorf("no lunorad daemon answers at %s (%v); start one with `lunorad up`, or pass --addr", addr, err)
}
