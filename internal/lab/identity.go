package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Identity is an operator key pair for tests.
type Identity struct {
	KeyFile       string // OpenSSH private key file, 0600, unencrypted
	Signer        ssh.Signer
	AuthorizedKey string // "ssh-ed25519 AAAA... comment"
}

// NewIdentity generates an ed25519 key and writes it to dir/id_ed25519 (0600, replacing an
// existing file) and dir/id_ed25519.pub.
func NewIdentity(dir string) (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("lab: identity: %w", err)
	}
	const comment = "cutover-lab-operator"
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("lab: identity: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("lab: identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: identity: %w", err)
	}
	id := &Identity{
		KeyFile:       filepath.Join(dir, "id_ed25519"),
		Signer:        signer,
		AuthorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment,
	}
	_ = os.Remove(id.KeyFile) // a new file gets mode 0600 from the start
	if err := os.WriteFile(id.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("lab: identity: %w", err)
	}
	if err := os.WriteFile(id.KeyFile+".pub", []byte(id.AuthorizedKey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("lab: identity: %w", err)
	}
	return id, nil
}
