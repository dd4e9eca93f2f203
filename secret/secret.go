// Package secret holds upstream API keys in a type that cannot leak them.
//
// A Key prints, formats, marshals and logs only as its masked form: the
// public prefix (such as "sk-or-v1-") and the last four characters. The raw
// value leaves the type in exactly one place, SetAuthorization, which is
// where the gateway writes the upstream request header.
package secret

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// knownPrefixes are public key prefixes that may be shown in the clear.
// The longest match wins, so "sk-or-v1-" beats "sk-".
var knownPrefixes = [...]string{"sk-or-v1-", "sk-proj-", "sk-ant-", "sk-"}

// Key is an API key. The zero value is an empty key.
//
// The secret sits behind a pointer: fmt reaches a Key's methods only when it
// may call them, and a Key in an unexported struct field is printed by
// reflection instead, which shows a pointer as its address, not its target.
// Keys are not comparable with ==; use Equal.
type Key struct {
	v *value
	_ [0]func()
}

type value struct {
	raw    string
	masked string
	bearer []string // precomputed Authorization header value, shared read-only
}

// New wraps raw. Surrounding white space is trimmed; an empty result is the
// zero Key.
func New(raw string) Key {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Key{}
	}
	return Key{v: &value{raw: raw, masked: Mask(raw), bearer: []string{"Bearer " + raw}}}
}

// Mask returns the masked form of raw: its known public prefix, an ellipsis
// and its last four characters. Keys too short to hide anything become "…".
func Mask(raw string) string {
	prefix := ""
	for _, p := range knownPrefixes {
		if strings.HasPrefix(raw, p) {
			prefix = p
			break
		}
	}
	rest := raw[len(prefix):]
	// Show the last four only when at least eight characters stay hidden.
	if len(rest) < 12 {
		return prefix + "…"
	}
	return prefix + "…" + rest[len(rest)-4:]
}

// IsZero reports whether the key is empty.
func (k Key) IsZero() bool { return k.v == nil }

// Equal reports whether two keys hold the same secret, without exposing it.
func (k Key) Equal(o Key) bool { return k.raw() == o.raw() }

func (k Key) raw() string {
	if k.v == nil {
		return ""
	}
	return k.v.raw
}

// String returns the masked form; "" for the zero Key.
func (k Key) String() string {
	if k.v == nil {
		return ""
	}
	return k.v.masked
}

// GoString returns the masked form, so %#v does not leak either.
func (k Key) GoString() string { return "secret.Key(" + strconv.Quote(k.String()) + ")" }

// Format makes every fmt verb print the masked form.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// MarshalJSON encodes the masked form as a JSON string.
func (k Key) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// MarshalText encodes the masked form (used by encoding/json map keys, slog).
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a key from configuration text, trimmed as New trims:
// settings such as GATEWAY_API_KEYS are parsed straight into Keys, so the
// raw text never sits in a plain string field.
func (k *Key) UnmarshalText(b []byte) error {
	*k = New(string(b))
	return nil
}

// Digest is the SHA-256 of the raw key, the zero array for the zero Key: what
// a gateway keeps of a client token, to compare the token a request brings
// in constant time.
func (k Key) Digest() [sha256.Size]byte {
	if k.v == nil {
		return [sha256.Size]byte{}
	}
	return sha256.Sum256([]byte(k.v.raw))
}

// LogValue makes slog record the masked form.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// SetAuthorization sets "Authorization: Bearer <key>" on h; for the zero Key
// it removes Authorization. It is the one place the raw key leaves this
// package (Digest gives only its hash). The
// header value slice is shared between calls and must not be modified by the
// caller.
func (k Key) SetAuthorization(h http.Header) {
	if k.v == nil {
		delete(h, "Authorization")
		return
	}
	h["Authorization"] = k.v.bearer
}

// Redactor replaces any of a set of keys found in text by its masked form,
// for upstream error bodies that echo the key back.
type Redactor struct {
	keys []Key
	// next, once set (Replace), is the redactor in force: a pool reload
	// brings new keys, which must be masked too.
	next atomic.Pointer[Redactor]
}

// Replace makes r mask keys from now on (a reloaded pool's, with those of
// calls still in flight on the old one). Safe while r is in use.
func (r *Redactor) Replace(keys []Key) { r.next.Store(NewRedactor(keys)) }

// NewRedactor returns a Redactor for keys.
func NewRedactor(keys []Key) *Redactor {
	ks := make([]Key, 0, len(keys))
	for _, k := range keys {
		if !k.IsZero() {
			ks = append(ks, k)
		}
	}
	// Longest first: a key that extends another must not be cut at the
	// shorter one's end, leaving its own secret tail in the clear.
	slices.SortStableFunc(ks, func(a, b Key) int { return cmp.Compare(len(b.v.raw), len(a.v.raw)) })
	return &Redactor{keys: ks}
}

// Redact returns s with every occurrence of a key masked. Scanning from
// the left, the first key found is masked, the longest where several start
// at one place; s comes back as it is when it holds no key.
func (r *Redactor) Redact(s string) string {
	if n := r.next.Load(); n != nil {
		r = n
	}
	out, _ := r.redact(s, true)
	return out
}

// RedactPrefix is Redact for a text that goes on after s: it masks s[:n]
// and returns it with n. From n on, s may hold the start of a key (or of a
// longer key than the one found there), cut by the end of s: give those
// bytes again with what follows.
func (r *Redactor) RedactPrefix(s string) (string, int) {
	if n := r.next.Load(); n != nil {
		r = n
	}
	return r.redact(s, false)
}

func (r *Redactor) redact(s string, final bool) (string, int) {
	var b strings.Builder
	last := 0 // s[:last] is masked into b
	// next[i] is where key i next occurs at or after some earlier last,
	// -1 when nowhere: each key's search goes forward only, so a text
	// quoting one key many times costs no more than one pass per key.
	var small [16]int
	next := small[:0]
	if len(r.keys) > len(small) {
		next = make([]int, 0, len(r.keys))
	}
	for range r.keys {
		next = append(next, -2) // not searched yet
	}
	for {
		at, k := -1, Key{}
		for i, key := range r.keys { // longest first: it wins a tie
			if next[i] == -2 || (next[i] >= 0 && next[i] < last) {
				next[i] = -1
				if x := strings.Index(s[last:], key.v.raw); x >= 0 {
					next[i] = last + x
				}
			}
			if x := next[i]; x >= 0 && (at < 0 || x < at) {
				at, k = x, key
			}
		}
		if at < 0 {
			break
		}
		if !final {
			// A key cut by the end of s, starting here or before, may
			// hold this one: it must be seen whole first.
			if h := r.holdFrom(s, last); h <= at {
				b.WriteString(s[last:h])
				return b.String(), h
			}
		}
		b.WriteString(s[last:at])
		b.WriteString(k.v.masked)
		last = at + len(k.v.raw)
	}
	end := len(s)
	if !final {
		end = r.holdFrom(s, last)
	}
	if last == 0 {
		return s[:end], end
	}
	b.WriteString(s[last:end])
	return b.String(), end
}

// cutKey reports whether t is a proper prefix of a key: the start of one
// that the end of the text cut.
func (r *Redactor) cutKey(t string) bool {
	for _, key := range r.keys {
		if len(t) < len(key.v.raw) && strings.HasPrefix(key.v.raw, t) {
			return true
		}
	}
	return false
}

// holdFrom is where, at or after from, the end of s may be a key cut short;
// len(s) when nowhere.
func (r *Redactor) holdFrom(s string, from int) int {
	if len(r.keys) == 0 {
		return len(s)
	}
	longest := len(r.keys[0].v.raw) // sorted longest first
	for p := max(from, len(s)-longest+1); p < len(s); p++ {
		if r.cutKey(s[p:]) {
			return p
		}
	}
	return len(s)
}
