package config

import (
	"sort"
	"strings"

	"github.com/keygate/keygate/keyring"
)

// PoolFrom reads the key pool from variables exactly as Load does: the
// numbered OPENROUTER_API_KEY_<N>, or else OPENROUTER_API_KEYS; repeated keys
// are kept once, under their lowest id. A KEYS_FILE is read through it, so
// that a file and the environment mean the same thing.
func PoolFrom(vars map[string]string) ([]keyring.Entry, []Duplicate, error) {
	return poolFrom(vars)
}

// KeyVarNames lists, sorted, the key variables set (non-blank) in environ
// (as os.Environ gives it) or dotenv: with KEYS_FILE the pool comes from the
// file alone, and start-up warns that these are ignored.
func KeyVarNames(environ []string, dotenv map[string]string) []string {
	seen := map[string]bool{}
	add := func(k, v string) {
		if strings.TrimSpace(v) != "" && (k == keyListVar || strings.HasPrefix(k, keyVarPrefix)) {
			seen[k] = true
		}
	}
	for k, v := range dotenv {
		add(k, v)
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			add(k, v)
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
