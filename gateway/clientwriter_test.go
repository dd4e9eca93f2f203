package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// cannedTransport answers every call with one 2xx body.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       r,
	}, nil
}

func benchKeys(n int) []secret.Key {
	ks := make([]secret.Key, n)
	for i := range ks {
		ks[i] = secret.New(fmt.Sprintf("sk-or-v1-%064x", i+1))
	}
	return ks
}

func newBenchServer(b testing.TB, body []byte, red *secret.Redactor) *Server {
	entries := []keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-" + strings.Repeat("1", 64))}}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, _ := keyring.ByName(keyring.NameRandom, nil)
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{Transport: cannedTransport{body}})
	return New(Options{Relay: rl, Strategy: st, BaseURL: base, MaxBodyBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler),
		AllowedHosts: []string{"example.com"}, Redactor: red})
}

// BenchmarkPassthrough2xx is the cost of masking keys in successful
// answers: the same passthrough with a redactor of 8 keys, and without.
func BenchmarkPassthrough2xx(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		// A chat answer's text: words, JSON escapes, digits.
		body := bytes.Repeat([]byte(`{"choices":[{"delta":{"content":"Some text, 42 \n and more"}}]} `), size/40+1)[:size]
		for _, tc := range []struct {
			name string
			red  *secret.Redactor
		}{{"off", nil}, {"8keys", secret.NewRedactor(benchKeys(8))}} {
			b.Run(fmt.Sprintf("%dKiB/redactor=%s", size>>10, tc.name), func(b *testing.B) {
				s := newBenchServer(b, body, tc.red)
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						w := httptest.NewRecorder()
						r := req.Clone(req.Context())
						r.Body = io.NopCloser(strings.NewReader(`{"model":"m"}`))
						s.ServeHTTP(w, r)
						if w.Code != http.StatusOK || w.Body.Len() != size {
							b.Errorf("%d, %d bytes", w.Code, w.Body.Len())
							return
						}
					}
				})
			})
		}
	}
}

// TestClientWriterMasks: the writer masks keys in a 2xx body written in
// pieces, keeps its length, masks 1xx and final headers, drops a header
// named by a key and masks trailers.
func TestClientWriterMasks(t *testing.T) {
	keys := benchKeys(2)
	red := secret.NewRedactor(keys)
	raw := fmt.Sprintf("sk-or-v1-%064x", 1)
	// httptest's recorder takes a 1xx for the final status: its own one.
	rec1 := httptest.NewRecorder()
	w1 := newClientWriter(rec1, red, 0, nil)
	w1.Header().Set("Link", "<https://x/?k="+raw+">")
	w1.WriteHeader(http.StatusEarlyHints)
	if got := rec1.Header().Get("Link"); strings.Contains(got, raw) {
		t.Fatalf("1xx header leaked: %q", got)
	}
	rec := httptest.NewRecorder()
	w := newClientWriter(rec, red, 0, nil)
	w.Header().Set("Set-Cookie", "k="+raw)
	w.Header().Set("X-"+raw, "1")
	w.Header().Set("Trailer", "X-T")
	w.WriteHeader(http.StatusOK)
	body := "a " + raw + " b"
	for i := 0; i < len(body); i += 7 {
		_, _ = w.Write([]byte(body[i:min(i+7, len(body))]))
	}
	w.Header().Set("X-T", raw)
	w.finish()
	var all strings.Builder
	all.WriteString(rec.Body.String())
	_ = rec.Header().Write(&all)
	if strings.Contains(strings.ToLower(all.String()), raw[9:30]) {
		t.Fatalf("key got out:\n%s", all.String())
	}
	if rec.Body.Len() != len(body) {
		t.Fatalf("body length %d, want %d", rec.Body.Len(), len(body))
	}
}

func FuzzClientWriterHeaders(f *testing.F) {
	raw := fmt.Sprintf("sk-or-v1-%064x", 1)
	f.Add("X-Key", raw, raw[:30], raw[30:])
	f.Add(raw, "v", "", strings.ReplaceAll(raw, "-", `\u002d`))
	f.Add("Location", "https://x/"+raw, "x", "y")
	// Two oracle slips: \u, CR, 02d is no escape; a body holding the key
	// with a letter's case changed is not the key as written.
	f.Add(raw, "v", "", `sk\u002dor\u002dv1\u`+"\r02d"+raw[len("sk-or-v1-"):])
	f.Add("X-Key", raw[:17]+"sk-or"+raw[17:], "sk-oR-v1-"+raw[9:30], raw[30:])
	red := secret.NewRedactor(benchKeys(1))
	f.Fuzz(func(t *testing.T, name, value, body1, body2 string) {
		if !validHeaderName(name) {
			return
		}
		rec := httptest.NewRecorder()
		w := newClientWriter(rec, red, 0, nil)
		w.Header().Set(name, value)
		w.Header().Set("Trailer", "X-T")
		_, _ = w.Write([]byte(body1))
		_, _ = w.Write([]byte(body2))
		w.Header().Set("X-T", value)
		w.finish()
		// The body and header values hold the key as written (or
		// JSON-escaped); a header name may hold it in any case, as
		// net/http writes names canonicalized ("X-Sk-Or-V1-…").
		leak := strings.Contains(unescapeJSON(rec.Body.String()), raw)
		for name, vs := range rec.Header() {
			leak = leak || strings.Contains(strings.ToLower(name), raw)
			for _, v := range vs {
				leak = leak || strings.Contains(v, raw)
			}
		}
		if leak {
			var all strings.Builder
			all.WriteString(rec.Body.String())
			_ = rec.Header().Write(&all)
			t.Fatalf("key got out:\n%s", all.String())
		}
	})
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// unescapeJSON reads \u00XX, \/ and \\ escapes as a JSON decoder would.
func unescapeJSON(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '/' {
			b.WriteByte('/')
			i++
			continue
		}
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\' {
			// An escaped backslash: no escape starts after it.
			b.WriteString(`\\`)
			i++
			continue
		}
		if s[i] == '\\' && i+5 < len(s) && s[i+1] == 'u' {
			// Exactly four hex digits, as JSON has them (Sscanf would skip
			// a blank and read \u, CR, 02d as "-", which no decoder does).
			if v, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil && v < 0x80 {
				b.WriteByte(byte(v))
				i += 5
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
