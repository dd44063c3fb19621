package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxJSONDepth bounds nesting; the schema itself is at most five levels deep.
const maxJSONDepth = 64

// parseJSON turns a JSON document into the same node tree YAML produces,
// with line numbers, so one validator serves both formats. It does not feed
// JSON to yaml.v3 directly because yaml.v3 rejects some valid JSON (the `\/`
// escape, for one). A syntax error comes back as a Problem with the line
// where parsing stopped.
func parseJSON(data []byte) (*yaml.Node, *Problem) {
	lines := newLineIndex(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &jsonParser{dec: dec, lines: lines}
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, &Problem{Message: "the file is empty; expected a JSON object", Line: 1}
	}
	if err != nil {
		return nil, p.syntaxProblem(err)
	}
	root, perr := p.value(tok, 0)
	if perr != nil {
		return nil, perr
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.syntaxProblem(err)
		}
		return nil, &Problem{Message: "invalid JSON: unexpected data after the top-level value", Line: p.line()}
	}
	return root, nil
}

type jsonParser struct {
	dec   *json.Decoder
	lines lineIndex
}

// line is the line of the token just read: InputOffset points right past it.
func (p *jsonParser) line() int { return p.lines.lineAt(int(p.dec.InputOffset()) - 1) }

func (p *jsonParser) value(tok json.Token, depth int) (*yaml.Node, *Problem) {
	line := p.line()
	if depth > maxJSONDepth {
		return nil, &Problem{Message: "invalid JSON: nested too deeply", Line: line}
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
			for p.dec.More() {
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxProblem(err)
				}
				key, _ := kt.(string) // encoding/json guarantees string keys here
				kn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: p.line()}
				vt, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxProblem(err)
				}
				vn, perr := p.value(vt, depth+1)
				if perr != nil {
					return nil, perr
				}
				n.Content = append(n.Content, kn, vn)
			}
			if _, err := p.dec.Token(); err != nil { // the closing '}'
				return nil, p.syntaxProblem(err)
			}
			return n, nil
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line}
			for p.dec.More() {
				vt, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxProblem(err)
				}
				vn, perr := p.value(vt, depth+1)
				if perr != nil {
					return nil, perr
				}
				n.Content = append(n.Content, vn)
			}
			if _, err := p.dec.Token(); err != nil { // the closing ']'
				return nil, p.syntaxProblem(err)
			}
			return n, nil
		}
		return nil, &Problem{Message: fmt.Sprintf("invalid JSON: unexpected %q", rune(t)), Line: line}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t, Line: line}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(t), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t), Line: line}, nil
	case bool:
		v := "false"
		if t {
			v = "true"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v, Line: line}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line}, nil
	}
	return nil, &Problem{Message: fmt.Sprintf("invalid JSON: unexpected token %v", tok), Line: line}
}

func (p *jsonParser) syntaxProblem(err error) *Problem {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &Problem{Message: "invalid JSON: " + syn.Error(), Line: p.lines.lineAt(int(syn.Offset) - 1)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &Problem{Message: "invalid JSON: unexpected end of file", Line: p.lines.lineAt(p.lines.size - 1)}
	}
	return &Problem{Message: "invalid JSON: " + err.Error(), Line: p.line()}
}

// lineIndex maps byte offsets to 1-based line numbers.
type lineIndex struct {
	newlines []int // offsets of '\n'
	size     int
}

func newLineIndex(data []byte) lineIndex {
	idx := lineIndex{size: len(data)}
	for i, b := range data {
		if b == '\n' {
			idx.newlines = append(idx.newlines, i)
		}
	}
	return idx
}

func (li lineIndex) lineAt(offset int) int {
	if offset < 0 {
		offset = 0
	}
	// The number of newlines strictly before offset, plus one.
	return sort.SearchInts(li.newlines, offset) + 1
}
