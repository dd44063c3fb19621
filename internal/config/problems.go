package config

import (
	"fmt"
	"strings"
)

// Problem is one reason a config file is refused. Path is the key path
// (`containers.hello.readyOn[0].status`, empty for a file-level problem such
// as a YAML syntax error); Line is 1-based, 0 when unknown.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

// String renders `path: message (line N)`, leaving out what is unknown.
func (p Problem) String() string { return formatFinding(p.Path, p.Message, p.Line) }

// Warning is a finding that does not refuse the file: an option that is
// accepted but has no effect in this version of lunorad, or a likely mistake.
type Warning struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

// String renders `path: message (line N)`, leaving out what is unknown.
func (w Warning) String() string { return formatFinding(w.Path, w.Message, w.Line) }

// ValidationError lists every problem of a refused file, in file order and,
// within one container, in @lunora/container's check order.
type ValidationError struct {
	Problems []Problem
}

// Error renders one problem per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func formatFinding(path, message string, line int) string {
	var b strings.Builder
	if path != "" {
		b.WriteString(path)
		b.WriteString(": ")
	}
	b.WriteString(message)
	if line > 0 {
		fmt.Fprintf(&b, " (line %d)", line)
	}
	return b.String()
}
