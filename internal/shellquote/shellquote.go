// Package shellquote quotes values for a POSIX shell. It is the one quoting
// rule of cutover: config fills hook placeholders with it, sshops builds the
// commands it runs on the hosts with it, and the plan shows values the way
// those commands hold them.
package shellquote

import "strings"

// safe are the characters no POSIX shell treats specially.
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_"

// Quote returns s as one shell word: as it is when it holds only characters
// no shell treats specially, in single quotes otherwise (a single quote
// inside closes the quotes, is escaped with a backslash, and reopens them).
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
