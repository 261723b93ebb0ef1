package config

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	File      string
	Line, Col int    // 0 when the position is unknown
	Key       string // full key name, e.g. "dns.names[1]"; empty for the whole file
	Msg       string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error holds every problem found in a config file.
type Error struct {
	Problems []Problem

	unusable bool // the file itself (its type, size or permissions), not its content
}

// ErrUnusableFile matches an *Error about the file itself rather than its
// lines: a directory, a pipe or another special file, a file over
// MaxFileSize, one that cannot be read.
var ErrUnusableFile = errors.New("config: not a readable regular file of at most 1 MiB")

// Is reports whether target is ErrUnusableFile and the error is about the file itself.
func (e *Error) Is(target error) bool { return target == ErrUnusableFile && e.unusable }

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0].String()
	}
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("config: %d problems:", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}
