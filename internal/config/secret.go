package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// ErrSecretFile wraps every failure to read a secret file.
var ErrSecretFile = errors.New("config: secret file")

// ReadSecretFile reads a secret from a mounted file (a Kubernetes secret
// volume, a Docker secret, a file written with echo). Every secret file is
// read by this one rule: the line ends at the end of the file ("\n" or
// "\r\n", however many) are not part of the secret, every other byte is,
// spaces and tabs included (a password may begin or end with a space). A
// file that is empty or only white space is an error, not an empty secret.
func ReadSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the path is the operator's setting
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSecretFile, err)
	}
	v, ok := secretFromFile(data)
	if !ok {
		return "", fmt.Errorf("%w: %s is empty", ErrSecretFile, path)
	}
	return v, nil
}

// secretFromFile is ReadSecretFile's rule: data without its trailing line
// ends, and false when nothing but white space is left.
func secretFromFile(data []byte) (string, bool) {
	v := strings.TrimRight(string(data), "\r\n")
	return v, strings.TrimSpace(v) != ""
}

// SecretValue resolves a secret setting and its ...File twin: the file's
// content when file is set, else value. Validate has refused both.
func SecretValue(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	return ReadSecretFile(file)
}

// Secret is one secret setting kept fresh: an inline value never changes,
// a file's content is read again by Reload (the app calls it every
// secrets.reloadInterval and on SIGHUP). A failed Reload keeps the last
// good value, so a secret being rewritten is never seen half-written or
// empty. Safe for concurrent use.
type Secret struct {
	file string

	mu    sync.RWMutex
	value string
}

// NewSecret reads the secret once: from file when set, else value.
func NewSecret(value, file string) (*Secret, error) {
	v, err := SecretValue(value, file)
	if err != nil {
		return nil, err
	}
	return &Secret{file: file, value: v}, nil
}

// Value is the current secret.
func (s *Secret) Value() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.value
}

// File is the secret's file, "" for an inline value.
func (s *Secret) File() string { return s.file }

// Reload reads the file again. It reports whether the value changed; on
// error the previous value stays.
func (s *Secret) Reload() (bool, error) {
	if s.file == "" {
		return false, nil
	}
	v, err := ReadSecretFile(s.file)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := v != s.value
	s.value = v
	return changed, nil
}
