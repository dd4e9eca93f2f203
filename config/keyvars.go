package config

import "github.com/keygate/keygate/keyring"

// PoolFrom reads the key pool from variables exactly as Load does: the
// numbered OPENROUTER_API_KEY_<N>, or else OPENROUTER_API_KEYS; repeated keys
// are kept once, under their lowest id. A KEYS_FILE is read through it, so
// that a file and the environment mean the same thing.
func PoolFrom(vars map[string]string) ([]keyring.Entry, []Duplicate, error) {
	return poolFrom(vars)
}
