package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// nginxWorkers matches lunorad's GOMAXPROCS=2: each side may use both cores.
const nginxWorkers = 2

// aptTimeout bounds the one-time install of Debian's nginx.
const aptTimeout = 5 * time.Minute

// findNginx returns the nginx binary, installing Debian's nginx-light with
// apt-get when it is missing and we are root. The peer row is reported as not
// measured (not failed) when neither works: nginx is a reference point, not
// the system under test.
func findNginx(ctx context.Context, install bool, progress func(string, ...any)) (path, why string) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, ""
		}
	}
	if !install {
		return "", "nginx is not installed (-install-nginx=false)"
	}
	if os.Geteuid() != 0 {
		return "", "nginx is not installed and installing it needs root (apt-get install nginx-light)"
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", "nginx is not installed and there is no apt-get to install it"
	}
	progress("nginx missing: apt-get install -y nginx-light (Debian's; the service is not started)")
	ctx, cancel := context.WithTimeout(ctx, aptTimeout)
	defer cancel()
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", "nginx-light"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Sprintf("apt-get %s failed: %v: %s", args[0], err, lastLine(out))
		}
	}
	// Debian's package may start the service on port 80; the harness runs its
	// own instance and never uses that one.
	if path, err := exec.LookPath("/usr/sbin/nginx"); err == nil {
		return path, ""
	}
	return "", "apt-get install nginx-light succeeded but no nginx binary was found"
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// nginxProxy is one nginx master process serving proxy_pass to a container.
type nginxProxy struct {
	Base   string // http://127.0.0.1:NNNNN
	cmd    *exec.Cmd
	exited chan struct{}
	dir    string
}

// Pid is the nginx master's; its workers are its children.
func (n *nginxProxy) Pid() int { return n.cmd.Process.Pid }

// nginxConf proxies everything to upstream with keep-alive connections to
// it, as a production nginx in front of an app would.
func nginxConf(dir, listen, upstream string) string {
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
user root;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  upstream container {
    server %[4]s;
    keepalive 64;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://container;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host container;
    }
  }
}
`, nginxWorkers, dir, listen, upstream)
}

// startNginx runs nginx in the foreground with a temp config on a free
// loopback port, proxying to upstream ("127.0.0.1:NNNNN").
func startNginx(ctx context.Context, bin, workDir, upstream string) (*nginxProxy, error) {
	dir := filepath.Join(workDir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, listen, upstream)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Its own process group, so the workers go with the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	n := &nginxProxy{Base: "http://" + listen, cmd: cmd, exited: make(chan struct{}), dir: dir}
	go func() { _ = cmd.Wait(); close(n.exited) }()

	if err := waitListening(ctx, listen, n.exited); err != nil {
		n.stop()
		return nil, fmt.Errorf("nginx (see %s): %w", filepath.Join(dir, "error.log"), err)
	}
	return n, nil
}

// stop ends nginx's process group (its own master and workers, by pgid).
func (n *nginxProxy) stop() {
	pgid := n.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGQUIT) // graceful: finish open requests
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-n.exited
	}
}

// nginxVersion is `nginx -v`'s answer, for the machine section.
func nginxVersion(bin string) string {
	if bin == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
}
