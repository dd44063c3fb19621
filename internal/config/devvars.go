package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DevVarsFileName is wrangler's secrets file for local development, read
// from the config file's folder.
const DevVarsFileName = ".dev.vars"

// LoadDevVars reads dir/.dev.vars. A missing file gives an empty map and
// no error. Errors name the line but never its content, which may be a secret.
func LoadDevVars(dir string) (map[string]string, error) {
	path := filepath.Join(dir, DevVarsFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	vars, err := parseDotenv(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vars, nil
}

var dotenvKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// parseDotenv parses the dotenv format wrangler reads: KEY=VALUE lines,
// blank lines and `#` comments, an optional `export ` prefix, values in
// single quotes or backticks (literal) or double quotes (with \n, \r, \t, \"
// and \\ escapes), which may span lines. As in the dotenv package, an
// unquoted value ends at `#`; quote values that contain one. A later
// definition of a key replaces an earlier one.
func parseDotenv(src string) (map[string]string, error) {
	src = strings.TrimPrefix(strings.ReplaceAll(src, "\r\n", "\n"), "\uFEFF")
	lines := strings.Split(src, "\n")
	vars := map[string]string{}
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		trimmed := strings.TrimSpace(lines[i])
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if after, ok := strings.CutPrefix(trimmed, "export"); ok && after != "" && (after[0] == ' ' || after[0] == '\t') {
			trimmed = strings.TrimSpace(after)
		}
		key, value, ok := strings.Cut(trimmed, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", lineNo)
		}
		if !dotenvKey.MatchString(key) {
			return nil, fmt.Errorf("line %d: %q is not a valid variable name", lineNo, key)
		}
		value = strings.TrimLeft(value, " \t")
		if value == "" || !strings.ContainsRune("\"'`", rune(value[0])) {
			if cut := strings.IndexByte(value, '#'); cut >= 0 {
				value = value[:cut]
			}
			vars[key] = strings.TrimSpace(value)
			continue
		}
		// A quoted value may continue on the following lines.
		quote, body := value[0], value[1:]
		end := closingQuote(body, quote)
		for end < 0 && i+1 < len(lines) {
			i++
			body += "\n" + lines[i]
			end = closingQuote(body, quote)
		}
		if end < 0 {
			return nil, fmt.Errorf("line %d: the quoted value is never closed", lineNo)
		}
		if tail := strings.TrimSpace(body[end+1:]); tail != "" && !strings.HasPrefix(tail, "#") {
			return nil, fmt.Errorf("line %d: unexpected characters after the closing quote", lineNo)
		}
		body = body[:end]
		if quote == '"' {
			body = unescapeDouble(body)
		}
		vars[key] = body
	}
	return vars, nil
}

// closingQuote finds the quote that ends body; in double quotes a backslash
// escapes the next character.
func closingQuote(body string, quote byte) int {
	for i := 0; i < len(body); i++ {
		switch {
		case quote == '"' && body[i] == '\\':
			i++
		case body[i] == quote:
			return i
		}
	}
	return -1
}

func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '"', '\\':
			b.WriteByte(s[i])
		default: // unknown escapes stay as written
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
