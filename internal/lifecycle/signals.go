package lifecycle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidArgument is wrapped by errors about a bad argument to a control
// call (an unknown signal, an empty host pattern); the router answers 400.
var ErrInvalidArgument = errors.New("invalid argument")

// signalNames lists the Linux signals by number (index).
var signalNames = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
	20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
	26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

// ParseSignal turns a stop signal as Lunora's stop(signal) accepts it (a
// number such as 15, or a name such as "SIGTERM", "term") into its
// canonical name. Empty means SIGTERM, upstream's default.
func ParseSignal(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "SIGTERM", nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n > 0 && n < len(signalNames) {
			return signalNames[n], nil
		}
		return "", fmt.Errorf("%w: unknown signal number %d", ErrInvalidArgument, n)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for _, known := range signalNames {
		if known != "" && known == name {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: unknown signal %q", ErrInvalidArgument, s)
}
