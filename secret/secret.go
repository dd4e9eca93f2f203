// Package secret holds upstream API keys in a type that cannot leak them.
//
// A Key prints, formats, marshals and logs only as its masked form: the
// public prefix (such as "sk-or-v1-") and the last four characters. The raw
// value leaves the type in exactly one place, SetAuthorization, which is
// where the gateway writes the upstream request header.
package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
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

// IsMask reports whether s has the form Mask gives (a known public prefix
// or none, an ellipsis, at most four characters): text a caller names a key
// by. Anything else may be a raw key, and is quoted nowhere.
func IsMask(s string) bool {
	prefix, last, ok := strings.Cut(s, "…")
	if !ok || len(last) > 4 || strings.Contains(last, "…") {
		return false
	}
	return prefix == "" || slices.Contains(knownPrefixes[:], prefix)
}

// fingerprintPrefix starts every Fingerprint, so that one is told apart
// from a mask or a raw key.
const fingerprintPrefix = "fp-"

// Fingerprint names the key without showing it: "fp-" and 16 hex digits of
// a SHA-256 of the key, apart from Digest's. Two keys may share a mask (its
// last four characters, or nothing of a short key); their fingerprints
// differ, so an admin call made from a page drawn before a reload can be
// refused. It is the same on every replica and across restarts, like the
// digest that names a key in Redis, and tells nothing of the key. The zero
// Key has none ("").
func (k Key) Fingerprint() string {
	if k.v == nil {
		return ""
	}
	sum := sha256.Sum256([]byte("keygate key fingerprint\x00" + k.v.raw))
	return fingerprintPrefix + hex.EncodeToString(sum[:8])
}

// IsFingerprint reports whether s has the form Fingerprint gives.
func IsFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, fingerprintPrefix)
	if !ok || len(h) != 16 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IsZero reports whether the key is empty.
func (k Key) IsZero() bool { return k.v == nil }

// ASCII reports whether the key is printable ASCII only: a token with
// a byte past it (a letter with an accent, a typographic quote pasted
// from a document) cannot be sent by browsers (fetch wants Latin-1
// headers) nor by Node's HTTP client. The zero Key is ASCII.
func (k Key) ASCII() bool {
	for _, c := range []byte(k.raw()) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Printable reports whether the key holds no control character and no
// blank: a key with an embedded newline or CR cannot travel in an HTTP
// header, so every call with it would fail while the key looked healthy.
// The zero Key is printable.
func (k Key) Printable() bool {
	for _, c := range []byte(k.raw()) {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

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
