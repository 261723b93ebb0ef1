package config

import (
	"fmt"
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
	pos := map[string]Pos{}
	arrayCount := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, at := joinKey(&p, e.Key())
			if e.Kind == unstable.ArrayTable {
				i := arrayCount[name]
				arrayCount[name] = i + 1
				name = fmt.Sprintf("%s[%d]", name, i)
			}
			prefix = name
			pos[name] = at
		case unstable.KeyValue:
			recordKeyValue(&p, e, prefix, pos)
		}
	}
	return pos
}

func recordKeyValue(p *unstable.Parser, kv *unstable.Node, prefix string, pos map[string]Pos) {
	name, at := joinKey(p, kv.Key())
	if prefix != "" {
		name = prefix + "." + name
	}
	pos[name] = at
	recordValue(p, kv.Value(), name, pos)
}

// recordValue records the keys of an inline table and the elements of an
// array, recursively.
func recordValue(p *unstable.Parser, v *unstable.Node, name string, pos map[string]Pos) {
	if v == nil {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				recordKeyValue(p, c, name, pos)
			}
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			c := it.Node()
			elem := fmt.Sprintf("%s[%d]", name, i)
			if at := shapePos(p, c); at.Line > 0 {
				pos[elem] = at
			}
			recordValue(p, c, elem, pos)
		}
	}
}

func joinKey(p *unstable.Parser, it unstable.Iterator) (string, Pos) {
	var parts []string
	var at Pos
	first := true
	for it.Next() {
		n := it.Node()
		if first {
			at = shapePos(p, n)
			first = false
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), at
}

func shapePos(p *unstable.Parser, n *unstable.Node) (at Pos) {
	defer func() {
		// Shape panics for ranges outside the input (synthetic nodes); a
		// missing position is better than a crash while reporting errors.
		if recover() != nil {
			at = Pos{}
		}
	}()
	if n.Raw.Length == 0 {
		return Pos{}
	}
	s := p.Shape(n.Raw)
	return Pos{Line: s.Start.Line, Col: s.Start.Column}
}
