package config

import (
	"fmt"
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

// noKeys is ErrNoKeys for a pool that vars leave empty, naming the
// variables set that look meant as key variables but are none (a typo like
// OPENROUTER_API_KEY1, or OPENROUTER_API_KEY, which other tools read): the
// bare error would leave the user sure the key is set. Names only, never
// values.
func noKeys(vars map[string]string) error {
	near := nearKeyVars(vars)
	if len(near) == 0 {
		return ErrNoKeys
	}
	verb := " is set, but is not one of these"
	if len(near) > 1 {
		verb = " are set, but are not among these"
	}
	return fmt.Errorf("%w (%s%s)", ErrNoKeys, joinNames(near), verb)
}

// nearKeyVars lists, sorted, the variables set in vars whose names look
// meant as key variables but are none.
func nearKeyVars(vars map[string]string) []string {
	var near []string
	for name, v := range vars {
		u := strings.ToUpper(name)
		if strings.TrimSpace(v) != "" && strings.Contains(u, "OPENROUTER") && strings.Contains(u, "KEY") &&
			!strings.HasPrefix(name, keyVarPrefix) && name != keyListVar {
			near = append(near, shownName(name))
		}
	}
	sort.Strings(near)
	return near
}

// shownName is a variable's name as a message may quote it. A key pasted
// into the name (OPENROUTER_API_KEY_7c1e…=1, a keys file's line written
// the wrong way round) must not be printed: the name is quoted up to its
// first '_'-separated part longer than 12 characters (no setting's name
// has one; a key is one), and "…" for the rest.
func shownName(name string) string {
	start := 0
	for start < len(name) {
		end := strings.IndexByte(name[start:], '_')
		if end < 0 {
			end = len(name) - start
		}
		if end > 12 {
			return name[:start] + "…"
		}
		start += end + 1
	}
	return name
}

// UnreadKeyVar is a variable set beside a pool that loaded, whose key is
// not in it: a typo among sibling variables (OPENROUTER_API_KEY2 beside
// OPENROUTER_API_KEY_1), or OPENROUTER_API_KEYS beside numbered ones. The
// pool starts without it, so start-up says so rather than drop it quietly.
type UnreadKeyVar struct {
	Name string
	// Shadowed: OPENROUTER_API_KEYS, read only when no numbered
	// variable is set.
	Shadowed bool
}

// unreadKeyVars lists the UnreadKeyVars of vars, whose pool (raw) came
// from other variables: names only, never values.
func unreadKeyVars(vars map[string]string, raw []rawKey) []UnreadKeyVar {
	if len(raw) == 0 {
		return nil
	}
	var out []UnreadKeyVar
	if strings.TrimSpace(vars[keyListVar]) != "" && strings.HasPrefix(raw[0].name, keyVarPrefix) {
		out = append(out, UnreadKeyVar{Name: keyListVar, Shadowed: true})
	}
	for _, name := range nearKeyVars(vars) {
		out = append(out, UnreadKeyVar{Name: name})
	}
	return out
}
