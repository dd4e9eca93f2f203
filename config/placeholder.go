package config

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/keygate/keygate/secret"
)

// A .env copied from .env.example and left unedited holds stand-ins, not
// keys: against the real upstream each would fail (401) and rest, and they
// all print alike (sk-or-v1-…-key). Load refuses a pool holding one, naming
// the variables to edit. A stand-in is a value with a placeholder's words
// or marks in it, a long run of one character (xxxxxx…), or one of several
// values that are one text with a short part changed (…-first-key,
// …-second-key). Real keys are random: none of this happens to them by
// chance.

// PlaceholderError is Load's error for a pool that holds placeholder
// values instead of keys.
type PlaceholderError struct {
	// Vars name the variables to edit, in the order of their key ids.
	Vars []string
	// Masked is how the first placeholder prints.
	Masked string
}

// Error implements error.
func (e *PlaceholderError) Error() string {
	what := " holds a placeholder, not an API key ("
	if len(e.Vars) > 1 {
		what = " hold placeholders, not API keys ("
	}
	return joinNames(e.Vars) + what + e.Masked + "): put your OpenRouter keys there (https://openrouter.ai/settings/keys)"
}

// joinNames lists names as "A", "A and B" or "A, B and C".
func joinNames(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// placeholderMarks are texts found in stand-ins ("PLACEHOLDER",
// "replace-with-your-key", "<your key>", "sk-or-v1-...") and never in a
// random key: each is long, or holds a character keys do not. A blank is
// not one: a real key with a blank in it (split by a paste, or followed by
// a comment that docker run --env-file keeps) is refused by checkPrintable,
// which names the blank.
var placeholderMarks = [...]string{
	"placeholder", "replace", "example", "changeme", "change-me", "change_me", "insert", "paste",
	"your-", "your_", "-your", "_your", "yourkey", "-here", "_here", "...", "…", "<", ">",
}

// placeholder reports whether one key value looks like a stand-in.
func placeholder(raw string) bool {
	low := strings.ToLower(raw)
	for _, m := range placeholderMarks {
		if strings.Contains(low, m) {
			return true
		}
	}
	return longRun(low)
}

// longRun reports whether s repeats one character 8 times in a row, or x 6
// times (xxxxxx is how people write "a key goes here").
func longRun(s string) bool {
	run := 0
	for i := range len(s) {
		if i > 0 && s[i] == s[i-1] {
			run++
		} else {
			run = 1
		}
		if run >= 8 || (run >= 6 && s[i] == 'x') {
			return true
		}
	}
	return false
}

// maxTemplatePart is the longest part in which two values of one template
// differ ("first" and "second", "1" and "2"); two random keys differ
// almost everywhere.
const maxTemplatePart = 12

// templated reports whether a and b are one text with a short part
// changed: they differ in at most maxTemplatePart bytes of each, and share
// at least 8 besides.
func templated(a, b string) bool {
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	return len(a)-p-s <= maxTemplatePart && len(b)-p-s <= maxTemplatePart && p+s >= 8
}

// checkPlaceholders returns a *PlaceholderError naming the variables of
// raw (the pool in id order, duplicates included) that hold stand-ins; nil
// when there are none.
func checkPlaceholders(raw []rawKey) error {
	bad := make([]bool, len(raw))
	for i, k := range raw {
		bad[i] = bad[i] || placeholder(k.raw)
		for j := i + 1; j < len(raw); j++ {
			// Equal values are duplicates, reported as such.
			if o := raw[j].raw; o != k.raw && templated(k.raw, o) {
				bad[i], bad[j] = true, true
			}
		}
	}
	var e *PlaceholderError
	for i, k := range raw {
		if !bad[i] {
			continue
		}
		if e == nil {
			e = &PlaceholderError{Masked: secret.Mask(k.raw)}
		}
		e.Vars = append(e.Vars, k.name)
	}
	if e == nil {
		return nil
	}
	return e
}

// openRouterBase reports whether base is OpenRouter's own API.
func openRouterBase(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "openrouter.ai" || strings.HasSuffix(h, ".openrouter.ai")
}

// apiPath is the path of an OpenRouter API version: /api/v1, or a later
// /api/v<N>.
var apiPath = regexp.MustCompile(`^/api/v[0-9]+$`)

// offAPIPath returns base's path ("/" for none) when base is OpenRouter's
// host but not its API, as in https://openrouter.ai, …/v1 or
// …/api/v1/chat/completions (a base URL copied with the route in it):
// /v1/<rest> goes to <base>/<rest>, which OpenRouter does not serve. It
// returns "" for any other base.
func offAPIPath(base string) string {
	if !openRouterBase(base) {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	p := strings.TrimRight(u.Path, "/")
	if apiPath.MatchString(p) {
		return ""
	}
	if p == "" {
		return "/"
	}
	return p
}

// openRouterKey reports whether raw is shaped like an OpenRouter key:
// sk-or-v1- and 64 hexadecimal digits, or a later version's sk-or-v<N>-
// with at least 32 letters and digits.
func openRouterKey(raw string) bool {
	rest, ok := strings.CutPrefix(raw, "sk-or-v")
	if !ok {
		return false
	}
	version, secret, ok := strings.Cut(rest, "-")
	if !ok || version == "" || strings.Trim(version, "0123456789") != "" || len(secret) < 32 {
		return false
	}
	for _, c := range []byte(secret) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// foreignKeys returns the ids of the keys of raw that do not look like
// OpenRouter keys when base is OpenRouter's, which would refuse them.
func foreignKeys(raw []rawKey, base string) []int {
	if !openRouterBase(base) {
		return nil
	}
	return idsOf(raw, func(key string) bool { return !openRouterKey(key) })
}

// idsOf returns the ids of the keys of raw that pick picks, each once.
func idsOf(raw []rawKey, pick func(key string) bool) []int {
	var ids []int
	for _, k := range raw {
		if pick(k.raw) && !slices.Contains(ids, k.id) {
			ids = append(ids, k.id)
		}
	}
	return ids
}

// Placeholders returns a *PlaceholderError when the pool that vars give
// (read as PoolFrom reads it) holds placeholders, else nil; a pool that
// does not parse is PoolFrom's to report. A KEYS_FILE is checked with it
// as Load checks the environment.
func Placeholders(vars map[string]string) error {
	raw, err := rawPool(vars)
	if err != nil {
		return nil
	}
	return checkPlaceholders(raw)
}
