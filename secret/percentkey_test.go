package secret

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// percentAll writes every byte of s for which enc says so as %XX, as an
// encoder that escapes more than it must (every non-letter, or every byte)
// does: RFC 3986 lets any byte be percent-encoded.
func percentAll(s string, enc func(byte) bool, lower bool) string {
	var b strings.Builder
	f := "%%%02X"
	if lower {
		f = "%%%02x"
	}
	for i := 0; i < len(s); i++ {
		if enc(s[i]) {
			fmt.Fprintf(&b, f, s[i])
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestRedactOverEncoded (helper-77): a key whose unreserved characters an
// upstream percent-encodes all the same ("sk%2Dor%2Dv1%2D…", in a
// Location header or a quoted URL) is a key, masked in one text and in a
// stream cut anywhere.
func TestRedactOverEncoded(t *testing.T) {
	r := NewRedactor([]Key{New(orKey)})
	dash := func(c byte) bool { return c == '-' }
	every := func(byte) bool { return true }
	odd := func(c byte) bool { return c%2 == 1 }
	for name, in := range map[string]string{
		"dashes":       "https://up.example/?k=" + percentAll(orKey, dash, false) + "&x=1",
		"dashes lower": "/keys/" + percentAll(orKey, dash, true),
		"every byte":   "k=" + percentAll(orKey, every, false),
		"some bytes":   `{"next":"` + percentAll(orKey, odd, true) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dec := func(s string) string {
				if u, err := url.QueryUnescape(s); err == nil {
					return u
				}
				return s
			}
			assertNoLeak(t, dec(r.Redact(in)), orKey)
			b := []byte(in)
			r.MaskInPlace(b, true)
			assertNoLeak(t, dec(string(b)), orKey)
			for cut := 0; cut <= len(in); cut++ {
				var out bytes.Buffer
				w := NewWriter(r, &out)
				_, _ = w.Write([]byte(in[:cut]))
				_, _ = w.Write([]byte(in[cut:]))
				_ = w.Close()
				if out.Len() != len(in) {
					t.Fatalf("cut %d: length %d, want %d", cut, out.Len(), len(in))
				}
				assertNoLeak(t, dec(out.String()), orKey)
			}
		})
	}
}
