package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SeedUsers returns the n mailbox names the lab uses: user00, user01, ...
func SeedUsers(n int) []string {
	us := make([]string, n)
	for i := range us {
		us[i] = fmt.Sprintf("user%02d", i)
	}
	return us
}

// SeedOptions configures Seed.
type SeedOptions struct {
	Users    int    // mailboxes; default 20
	Messages int    // messages over all mailboxes; default 5000
	Seed     uint64 // of the pseudo-random sizes, flags and contents; default 1
}

// SeedManifest describes what Seed wrote. Paths are as seen inside the host.
type SeedManifest struct {
	Users     []string
	Messages  []string   // every message file (Maildir new/ and cur/, including hard-link copies)
	HardLinks [][]string // groups of paths that are one file
	Files     []string   // every regular file written, messages included (second names of hard links are only in Messages and HardLinks)
	Symlinks  []string
	Dirs      []string
	Bytes     int64 // content bytes written (each hard-linked file counted once)
}

// Seed fills a host the way a chatmail relay looks: Maildirs under MailRoot with flags in the
// names, dovecot-uidlist files and hard links (a .Archive folder sharing files with the inbox),
// owned by the host's vmail; ACME certificates (root), DKIM keys (opendkim, 0600) and a Postfix
// spool (root, one name with a space and a colon). Users are looked up in the host's own
// /etc/passwd. It writes through the real fs (Host.Path) and sets times in the past.
func Seed(h *Host, opts SeedOptions) (*SeedManifest, error) {
	if opts.Users == 0 {
		opts.Users = 20
	}
	if opts.Messages == 0 {
		opts.Messages = 5000
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Users < 0 || opts.Messages < 0 {
		return nil, fmt.Errorf("lab: seed: negative count (users %d, messages %d)", opts.Users, opts.Messages)
	}
	s := &seeder{h: h, rnd: rand.New(rand.NewPCG(opts.Seed, 0x5eed)), m: &SeedManifest{Users: SeedUsers(opts.Users)}, base: time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)}
	var err error
	if s.vmail, err = lookupID(h.Path("/etc/passwd"), "vmail"); err != nil {
		return nil, fmt.Errorf("lab: host %q: seed: %w", h.Name, err)
	}
	if s.opendkim, err = lookupID(h.Path("/etc/passwd"), "opendkim"); err != nil {
		return nil, fmt.Errorf("lab: host %q: seed: %w", h.Name, err)
	}
	if err := s.run(opts); err != nil {
		return nil, fmt.Errorf("lab: host %q: seed: %w", h.Name, err)
	}
	return s.m, nil
}

type owner struct{ uid, gid int }

var rootOwner = owner{0, 0}

// lookupID returns the uid and gid of name in a passwd file.
func lookupID(passwd, name string) (owner, error) {
	b, err := os.ReadFile(passwd)
	if err != nil {
		return owner{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 4 && f[0] == name {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				return owner{}, fmt.Errorf("malformed passwd line %q", l)
			}
			return owner{uid, gid}, nil
		}
	}
	return owner{}, fmt.Errorf("no user %q in the host's /etc/passwd", name)
}

type seeder struct {
	h               *Host
	rnd             *rand.Rand
	m               *SeedManifest
	base            time.Time
	vmail, opendkim owner
	n               int
}

func (s *seeder) dir(p string, mode fs.FileMode, o owner) error {
	rp := s.h.Path(p)
	if err := os.MkdirAll(rp, mode); err != nil {
		return err
	}
	if err := os.Chmod(rp, mode); err != nil {
		return err
	}
	if err := os.Lchown(rp, o.uid, o.gid); err != nil {
		return err
	}
	if !slices.Contains(s.m.Dirs, p) {
		s.m.Dirs = append(s.m.Dirs, p)
	}
	return nil
}

func (s *seeder) file(p string, content []byte, mode fs.FileMode, o owner, mtime time.Time) error {
	rp := s.h.Path(p)
	if err := os.WriteFile(rp, content, mode); err != nil {
		return err
	}
	if err := os.Chmod(rp, mode); err != nil {
		return err
	}
	if err := os.Lchown(rp, o.uid, o.gid); err != nil {
		return err
	}
	if err := os.Chtimes(rp, mtime, mtime); err != nil {
		return err
	}
	s.m.Files = append(s.m.Files, p)
	s.m.Bytes += int64(len(content))
	return nil
}

func (s *seeder) text(n int) []byte {
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua chatmail relay delta"
	ws := strings.Fields(words)
	var b strings.Builder
	col := 0
	for b.Len() < n {
		w := ws[s.rnd.IntN(len(ws))]
		if s.rnd.IntN(8) == 0 {
			w = strconv.FormatUint(s.rnd.Uint64(), 36)
		}
		if col+len(w) > 72 {
			b.WriteString("\n")
			col = 0
		}
		b.WriteString(w + " ")
		col += len(w) + 1
	}
	b.WriteString("\n")
	return []byte(b.String())
}

func (s *seeder) run(opts SeedOptions) error {
	// Mail.
	if err := s.dir("/home/vmail", 0o755, s.vmail); err != nil {
		return err
	}
	for _, d := range []string{"/home/vmail/mail", MailRoot} {
		if err := s.dir(d, 0o700, s.vmail); err != nil {
			return err
		}
	}
	per := make([]int, len(s.m.Users))
	for i := 0; i < opts.Messages; i++ {
		per[i%len(per)]++
	}
	for i, u := range s.m.Users {
		if err := s.mailbox(u, per[i]); err != nil {
			return err
		}
	}
	// ACME.
	for _, d := range []string{"/var/lib/acme", "/var/lib/acme/live", "/var/lib/acme/live/mail.example.org", "/var/lib/acme/archive"} {
		if err := s.dir(d, 0o755, rootOwner); err != nil {
			return err
		}
	}
	t := s.base
	if err := s.file("/var/lib/acme/live/mail.example.org/fullchain.pem", pemBlock("CERTIFICATE", s.text(1800)), 0o644, rootOwner, t); err != nil {
		return err
	}
	if err := s.file("/var/lib/acme/live/mail.example.org/privkey.pem", pemBlock("PRIVATE KEY", s.text(240)), 0o600, rootOwner, t); err != nil {
		return err
	}
	if err := s.symlink("/var/lib/acme/current", "live/mail.example.org"); err != nil {
		return err
	}
	// DKIM.
	if err := s.dir("/etc/dkimkeys", 0o700, s.opendkim); err != nil {
		return err
	}
	if err := s.file("/etc/dkimkeys/opendkim.private", pemBlock("PRIVATE KEY", s.text(1600)), 0o600, s.opendkim, t); err != nil {
		return err
	}
	if err := s.file("/etc/dkimkeys/opendkim.txt", []byte("opendkim._domainkey\tIN\tTXT\t( \"v=DKIM1; h=sha256; k=rsa; \" \"p=MIIBIjANBgkq\" )\n"), 0o600, s.opendkim, t); err != nil {
		return err
	}
	// Postfix spool.
	for _, d := range []struct {
		p    string
		mode fs.FileMode
	}{{"/var/spool/postfix", 0o755}, {"/var/spool/postfix/active", 0o700}, {"/var/spool/postfix/deferred", 0o700},
		{"/var/spool/postfix/deferred/3", 0o700}, {"/var/spool/postfix/incoming", 0o700},
		{"/var/spool/postfix/maildrop", 0o730}, {"/var/spool/postfix/pid", 0o755}} {
		if err := s.dir(d.p, d.mode, rootOwner); err != nil {
			return err
		}
	}
	for i, p := range []string{"/var/spool/postfix/deferred/3/3F2A1B0C9", "/var/spool/postfix/active/4B1C2D3E4", "/var/spool/postfix/active/odd name: with space"} {
		if err := s.file(p, s.text(500+300*i), 0o700, rootOwner, t.Add(time.Duration(i)*time.Minute)); err != nil {
			return err
		}
	}
	if err := s.file("/var/spool/postfix/pid/master.pid", []byte("       1234\n"), 0o644, rootOwner, t); err != nil {
		return err
	}
	// Directory times last: writing into a directory changes its mtime.
	for _, d := range s.m.Dirs {
		if err := os.Chtimes(s.h.Path(d), s.base, s.base); err != nil {
			return err
		}
	}
	return nil
}

func pemBlock(typ string, body []byte) []byte {
	return []byte("-----BEGIN " + typ + "-----\n" + string(body) + "-----END " + typ + "-----\n")
}

func (s *seeder) symlink(p, target string) error {
	if err := os.Symlink(target, s.h.Path(p)); err != nil {
		return err
	}
	s.m.Symlinks = append(s.m.Symlinks, p)
	return nil
}

var seedFlags = []string{"S", "S", "S", "RS", "FS", "", "ST", "S"}

// mailbox writes one user's Maildir with n messages, about a fifth of them unread in new/, a
// dovecot-uidlist, and a .Archive folder hard-linking every 20th message.
func (s *seeder) mailbox(user string, n int) error {
	root := MailRoot + "/" + user
	for _, d := range []string{root, root + "/cur", root + "/new", root + "/tmp", root + "/.Archive", root + "/.Archive/cur", root + "/.Archive/new", root + "/.Archive/tmp"} {
		if err := s.dir(d, 0o700, s.vmail); err != nil {
			return err
		}
	}
	var uidlist, archUIDs strings.Builder
	uidValidity := s.base.Unix() + int64(s.n)
	fmt.Fprintf(&uidlist, "3 V%d N%d G%016x%016x\n", uidValidity, n+1, s.rnd.Uint64(), s.rnd.Uint64())
	fmt.Fprintf(&archUIDs, "3 V%d N%d G%016x%016x\n", uidValidity+1, n/20+2, s.rnd.Uint64(), s.rnd.Uint64())
	archUID := 1
	for i := 1; i <= n; i++ {
		s.n++
		t := s.base.Add(time.Duration(s.n) * 37 * time.Second)
		size := 300 + s.rnd.IntN(5000)
		if s.rnd.IntN(100) == 0 {
			size = 100_000 + s.rnd.IntN(50_000)
		}
		body := fmt.Sprintf("From: sender%d@example.net\nTo: %s@example.org\nSubject: seeded %d\nMessage-ID: <seed-%d@example.net>\nDate: %s\n\n",
			s.n, user, s.n, s.n, t.Format(time.RFC1123Z))
		content := append([]byte(body), s.text(size)...)
		base := fmt.Sprintf("%d.M%dP%d.lab,S=%d,W=%d", t.Unix(), s.rnd.IntN(1_000_000), 1000+s.n, len(content), len(content)+strings.Count(string(content), "\n"))
		p := root + "/new/" + base
		if s.rnd.IntN(5) != 0 {
			p = root + "/cur/" + base + ":2," + seedFlags[s.rnd.IntN(len(seedFlags))]
			fmt.Fprintf(&uidlist, "%d :%s\n", i, base)
		}
		if err := s.file(p, content, 0o600, s.vmail, t); err != nil {
			return err
		}
		s.m.Messages = append(s.m.Messages, p)
		if i%20 == 0 {
			link := root + "/.Archive/cur/" + filepath.Base(p)
			if !strings.Contains(link, ":2,") {
				link += ":2,S"
			}
			if err := os.Link(s.h.Path(p), s.h.Path(link)); err != nil {
				return err
			}
			s.m.Messages = append(s.m.Messages, link)
			s.m.HardLinks = append(s.m.HardLinks, []string{p, link})
			fmt.Fprintf(&archUIDs, "%d :%s\n", archUID, base)
			archUID++
		}
	}
	t := s.base.Add(time.Duration(s.n) * 37 * time.Second)
	if err := s.file(root+"/dovecot-uidlist", []byte(uidlist.String()), 0o600, s.vmail, t); err != nil {
		return err
	}
	if err := s.file(root+"/.Archive/dovecot-uidlist", []byte(archUIDs.String()), 0o600, s.vmail, t); err != nil {
		return err
	}
	if err := s.file(root+"/dovecot-uidvalidity", []byte(fmt.Sprintf("%x\n", uidValidity)), 0o600, s.vmail, t); err != nil {
		return err
	}
	return s.file(root+"/subscriptions", []byte("V\t2\n\nArchive\n"), 0o600, s.vmail, t)
}

// ClientOptions configures SimulateClient.
type ClientOptions struct {
	Read   int    // messages moved from new/ to cur/ with the Seen flag
	Delete int    // messages deleted from cur/
	Arrive int    // messages delivered into new/ (owned by the host's vmail, 0600)
	Seed   uint64 // default 1
}

// ClientActions is what SimulateClient did. Paths are as seen inside the host.
type ClientActions struct {
	Moved      map[string]string // new/ path -> cur/ path
	Deleted    []string
	DeletedIDs []string // X-Lab-Id of deleted messages that came from a Sender
	Arrived    []string
}

// SimulateClient plays a mail client on h: it marks Read messages of the INBOXes under MailRoot
// as seen (rename new/X -> cur/X:2,S) and deletes Delete messages from their cur/, choosing
// pseudo-randomly; then Arrive new messages land in the new/ of pseudo-random INBOXes. Messages
// renamed in this call are not deleted in it.
func SimulateClient(h *Host, opts ClientOptions) (*ClientActions, error) {
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	rnd := rand.New(rand.NewPCG(opts.Seed, 0xc11e47))
	list := func(sub string) ([]string, error) {
		ms, err := filepath.Glob(h.Path(MailRoot) + "/*/" + sub + "/*")
		if err != nil {
			return nil, err
		}
		sort.Strings(ms)
		rnd.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		return ms, nil
	}
	hostPath := func(real string) string {
		rel, _ := filepath.Rel(h.Path(MailRoot), real)
		return MailRoot + "/" + rel
	}
	a := &ClientActions{Moved: map[string]string{}}
	fail := func(err error) (*ClientActions, error) {
		return a, fmt.Errorf("lab: host %q: mail client: %w", h.Name, err)
	}
	unread, err := list("new")
	if err != nil {
		return fail(err)
	}
	if len(unread) < opts.Read {
		return fail(fmt.Errorf("%d unread messages, %d to read", len(unread), opts.Read))
	}
	for _, p := range unread[:opts.Read] {
		to := filepath.Join(filepath.Dir(filepath.Dir(p)), "cur", filepath.Base(p)+":2,S")
		if err := os.Rename(p, to); err != nil {
			return fail(err)
		}
		a.Moved[hostPath(p)] = hostPath(to)
	}
	movedTo := map[string]bool{}
	for _, to := range a.Moved {
		movedTo[to] = true
	}
	read, err := list("cur")
	if err != nil {
		return fail(err)
	}
	for _, p := range read {
		if len(a.Deleted) == opts.Delete {
			break
		}
		if movedTo[hostPath(p)] {
			continue
		}
		id, err := labID(p)
		if err != nil {
			return fail(err)
		}
		if err := os.Remove(p); err != nil {
			return fail(err)
		}
		a.Deleted = append(a.Deleted, hostPath(p))
		if id != "" {
			a.DeletedIDs = append(a.DeletedIDs, id)
		}
	}
	if len(a.Deleted) < opts.Delete {
		return fail(fmt.Errorf("only %d read messages to delete, %d wanted", len(a.Deleted), opts.Delete))
	}
	if opts.Arrive == 0 {
		return a, nil
	}
	if err := arrive(h, rnd, opts.Arrive, a); err != nil {
		return fail(err)
	}
	return a, nil
}

// arrive delivers n messages into the new/ of pseudo-random INBOXes under MailRoot, as Dovecot's
// LDA would: owned by vmail, mode 0600, named by time, a counter and the size.
func arrive(h *Host, rnd *rand.Rand, n int, a *ClientActions) error {
	vmail, err := lookupID(h.Path("/etc/passwd"), "vmail")
	if err != nil {
		return err
	}
	boxes, err := filepath.Glob(h.Path(MailRoot) + "/*/new")
	if err != nil {
		return err
	}
	if len(boxes) == 0 {
		return fmt.Errorf("no INBOX under %s for %d arrivals", MailRoot, n)
	}
	sort.Strings(boxes)
	s := &seeder{h: h, rnd: rnd, m: &SeedManifest{}}
	now := time.Now().Truncate(time.Second)
	for i := range n {
		box := boxes[rnd.IntN(len(boxes))]
		content := append([]byte(fmt.Sprintf("From: arrival%d@example.net\nSubject: arrival %d\n\n", i, i)), s.text(300+rnd.IntN(5000))...)
		name := fmt.Sprintf("%d.M%dP%d.lab,S=%d", now.Unix(), rnd.IntN(1_000_000), 900_000+i, len(content))
		rel, _ := filepath.Rel(h.Path(MailRoot), box)
		p := MailRoot + "/" + rel + "/" + name
		if err := s.file(p, content, 0o600, vmail, now); err != nil {
			return err
		}
		a.Arrived = append(a.Arrived, p)
	}
	return nil
}

// FileInfo describes one entry of a Snapshot.
type FileInfo struct {
	Type   string      // "file", "dir", "symlink", "other"
	Mode   fs.FileMode // permission and special bits
	Size   int64       // files only
	MTime  time.Time   // files only (directory times change with their contents; symlink times are not kept by every tool)
	Owner  string      // user name by the host's /etc/passwd, or the number
	Group  string      // group name by the host's /etc/group, or the number
	SHA256 string      // files only
	Target string      // symlinks only
	Links  []string    // files with several links: all their paths in the snapshot, sorted
}

// Snapshot walks roots (paths inside the host, under its mounts) through the real fs and
// describes every entry, keyed by its path inside the host. Owners are resolved by the host's
// own user database, so snapshots of two hosts compare by name.
func Snapshot(h *Host, roots ...string) (map[string]FileInfo, error) {
	users, err := idNames(h.Path("/etc/passwd"))
	if err != nil {
		return nil, fmt.Errorf("lab: host %q: snapshot: %w", h.Name, err)
	}
	groups, err := idNames(h.Path("/etc/group"))
	if err != nil {
		return nil, fmt.Errorf("lab: host %q: snapshot: %w", h.Name, err)
	}
	name := func(m map[int]string, id uint32) string {
		if n, ok := m[int(id)]; ok {
			return n
		}
		return strconv.Itoa(int(id))
	}
	out := map[string]FileInfo{}
	inodes := map[uint64][]string{}
	for _, root := range roots {
		rroot := h.Path(root)
		err := filepath.WalkDir(rroot, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(rroot, p)
			hp := filepath.Join(root, rel)
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			e := FileInfo{Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
				Owner: name(users, st.Uid), Group: name(groups, st.Gid)}
			switch {
			case fi.Mode().IsRegular():
				e.Type, e.Size, e.MTime = "file", fi.Size(), fi.ModTime()
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				sum := sha256.New()
				_, err = io.Copy(sum, f)
				f.Close()
				if err != nil {
					return err
				}
				e.SHA256 = hex.EncodeToString(sum.Sum(nil))
				if st.Nlink > 1 {
					inodes[st.Ino] = append(inodes[st.Ino], hp)
				}
			case fi.IsDir():
				e.Type = "dir"
			case fi.Mode()&fs.ModeSymlink != 0:
				e.Type = "symlink"
				if e.Target, err = os.Readlink(p); err != nil {
					return err
				}
			default:
				e.Type = "other"
			}
			out[hp] = e
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lab: host %q: snapshot %s: %w", h.Name, root, err)
		}
	}
	for _, ps := range inodes {
		if len(ps) < 2 {
			continue
		}
		sort.Strings(ps)
		for _, p := range ps {
			e := out[p]
			e.Links = ps
			out[p] = e
		}
	}
	return out, nil
}

// idNames maps ids to names in a passwd or group file.
func idNames(path string) (map[int]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[int]string{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 {
			if id, err := strconv.Atoi(f[2]); err == nil {
				if _, dup := m[id]; !dup {
					m[id] = f[0]
				}
			}
		}
	}
	return m, nil
}

// DiffSnapshots lists the differences between two snapshots (want, got), sorted by path, at most
// max of them (0: all). Only file times are compared.
func DiffSnapshots(want, got map[string]FileInfo, max int) []string {
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var diffs []string
	for _, p := range paths {
		if max > 0 && len(diffs) == max {
			break
		}
		w, wok := want[p]
		g, gok := got[p]
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("%s: missing", p))
		case !wok:
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", p, g.Type))
		default:
			var d []string
			if w.Type != g.Type {
				d = append(d, fmt.Sprintf("type %s, want %s", g.Type, w.Type))
			}
			if w.Mode != g.Mode {
				d = append(d, fmt.Sprintf("mode %v, want %v", g.Mode, w.Mode))
			}
			if w.Owner != g.Owner || w.Group != g.Group {
				d = append(d, fmt.Sprintf("owner %s:%s, want %s:%s", g.Owner, g.Group, w.Owner, w.Group))
			}
			if w.Size != g.Size || w.SHA256 != g.SHA256 {
				d = append(d, fmt.Sprintf("content %d bytes %.12s, want %d bytes %.12s", g.Size, g.SHA256, w.Size, w.SHA256))
			}
			if !w.MTime.Equal(g.MTime) {
				d = append(d, fmt.Sprintf("mtime %s, want %s", g.MTime.Format(time.RFC3339Nano), w.MTime.Format(time.RFC3339Nano)))
			}
			if w.Target != g.Target {
				d = append(d, fmt.Sprintf("target %q, want %q", g.Target, w.Target))
			}
			if !slices.Equal(w.Links, g.Links) {
				d = append(d, fmt.Sprintf("links %q, want %q", g.Links, w.Links))
			}
			if len(d) > 0 {
				diffs = append(diffs, p+": "+strings.Join(d, "; "))
			}
		}
	}
	return diffs
}
