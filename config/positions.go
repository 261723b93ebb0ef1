package config

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Pos is a place in the config file.
type Pos struct {
	Line, Col int
}

// keyPositions maps every key's full name ("dns.names", "sync[1].path",
// "hooks.disable.run") to where it is written. Array-of-tables entries are
// numbered from 0 in the order they appear; tables themselves are recorded
// under their header name; the elements of an array value under the key
// and their index ("dns.resolvers[1]"), at the element itself.
func keyPositions(data []byte) map[string]Pos {
	r := &recorder{pos: map[string]Pos{}, lines: lineStarts(data), size: len(data)}
	arrayCount := map[string]int{}
	r.p.Reset(data)
	prefix := ""
	for r.p.NextExpression() {
		e := r.p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, at := r.joinKey(e.Key())
			if e.Kind == unstable.ArrayTable {
				i := arrayCount[name]
				arrayCount[name] = i + 1
				name = fmt.Sprintf("%s[%d]", name, i)
			}
			prefix = name
			r.pos[name] = at
		case unstable.KeyValue:
			r.keyValue(e, prefix)
		}
	}
	return r.pos
}

// recorder collects the positions of one file.
type recorder struct {
	p     unstable.Parser
	pos   map[string]Pos
	lines []int // offset where each line starts; lines[0] is 0
	size  int
}

// lineStarts indexes data once, so that finding a node's line is a binary
// search (the parser's own Shape scans from the top of the file every
// time, which made a file of 20,000 keys take a minute).
func lineStarts(data []byte) []int {
	starts := []int{0}
	for off := 0; ; {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return starts
		}
		off += i + 1
		starts = append(starts, off)
	}
}

// at returns where n starts: line and byte column, from 1. Nodes without
// a range in the input (synthetic ones) have no position.
func (r *recorder) at(n *unstable.Node) Pos {
	off := int(n.Raw.Offset)
	if n.Raw.Length == 0 || off+int(n.Raw.Length) > r.size {
		return Pos{}
	}
	line := sort.Search(len(r.lines), func(i int) bool { return r.lines[i] > off })
	return Pos{Line: line, Col: off - r.lines[line-1] + 1}
}

func (r *recorder) keyValue(kv *unstable.Node, prefix string) {
	name, at := r.joinKey(kv.Key())
	if prefix != "" {
		name = prefix + "." + name
	}
	r.pos[name] = at
	r.value(kv.Value(), name)
}

// value records the keys of an inline table and the elements of an array,
// recursively.
func (r *recorder) value(v *unstable.Node, name string) {
	if v == nil {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				r.keyValue(c, name)
			}
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			c := it.Node()
			elem := fmt.Sprintf("%s[%d]", name, i)
			if at := r.at(c); at.Line > 0 {
				r.pos[elem] = at
			}
			r.value(c, elem)
		}
	}
}

func (r *recorder) joinKey(it unstable.Iterator) (string, Pos) {
	var parts []string
	var at Pos
	first := true
	for it.Next() {
		n := it.Node()
		if first {
			at = r.at(n)
			first = false
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), at
}
