package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	orKey   = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567c0de"
	projKey = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789wxyz"
	plain   = "sk-ZyXwVuTsRqPoNmLkJiHg9876"
	bare    = "0123456789abcdefghijklmnop"
)

// leaks reports the first 12-byte window of raw found in out.
func leaks(out, raw string) (string, bool) {
	for i := 0; i+12 <= len(raw); i++ {
		if w := raw[i : i+12]; strings.Contains(out, w) {
			return w, true
		}
	}
	return "", false
}

func assertNoLeak(t *testing.T, out, raw string) {
	t.Helper()
	if w, ok := leaks(out, raw); ok {
		t.Fatalf("output leaks %q of the key:\n%s", w, out)
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"openrouter", orKey, "sk-or-v1-…c0de"},
		{"project", projKey, "sk-proj-…wxyz"},
		{"anthropic", "sk-ant-api03-abcdefghijklmn1234", "sk-ant-…1234"},
		{"plain sk", plain, "sk-…9876"},
		{"no prefix", bare, "…mnop"},
		{"rest of exactly 12", "sk-or-v1-abcdefgh1234", "sk-or-v1-…1234"},
		{"rest of 11", "sk-or-v1-abcdefg1234", "sk-or-v1-…"},
		{"short bare", "abc", "…"},
		{"prefix only", "sk-or-v1-", "sk-or-v1-…"},
		{"sk- only", "sk-", "sk-…"},
		{"empty", "", "…"},
		{"prefix not at start", "xsk-or-v1-abcdefghijkl", "…ijkl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mask(tt.raw); got != tt.want {
				t.Fatalf("Mask(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	k := New("  \t" + orKey + "\n")
	if k.IsZero() || k.String() != "sk-or-v1-…c0de" {
		t.Fatalf("New trimmed = %v (zero %v)", k, k.IsZero())
	}
	if !k.Equal(New(orKey)) || k.Equal(New(plain)) {
		t.Fatal("Equal compares the secret")
	}
	for _, raw := range []string{"", "  \n"} {
		if z := New(raw); !z.IsZero() || z.String() != "" || !z.Equal(Key{}) {
			t.Fatalf("New(%q) = %v, want the zero Key", raw, z)
		}
	}
}

type exported struct {
	ID  int
	Key Key
}

type unexported struct {
	id  int
	key Key
}

type pointer struct {
	Key *Key
}

func TestKeyNeverPrintsRaw(t *testing.T) {
	for _, raw := range []string{orKey, projKey, plain, bare} {
		k := New(raw)
		prints := map[string]func() string{
			"%s":                 func() string { return fmt.Sprintf("%s", k) },
			"%v":                 func() string { return fmt.Sprintf("%v", k) },
			"%+v":                func() string { return fmt.Sprintf("%+v", k) },
			"%#v":                func() string { return fmt.Sprintf("%#v", k) },
			"%q":                 func() string { return fmt.Sprintf("%q", k) },
			"%x":                 func() string { return fmt.Sprintf("%x", k) },
			"%X":                 func() string { return fmt.Sprintf("%X", k) },
			"%d":                 func() string { return fmt.Sprintf("%d", k) },
			"%T %p":              func() string { return fmt.Sprintf("%T %p", k, &k) },
			"Sprint":             func() string { return fmt.Sprint(k) },
			"Sprintln":           func() string { return fmt.Sprintln(k, &k) },
			"pointer %+v":        func() string { return fmt.Sprintf("%+v %#v", &k, &k) },
			"slice":              func() string { return fmt.Sprintf("%v %+v %#v", []Key{k}, []Key{k}, []Key{k}) },
			"map":                func() string { return fmt.Sprintf("%v %#v", map[string]Key{"a": k}, map[string]Key{"a": k}) },
			"struct %+v":         func() string { return fmt.Sprintf("%+v", exported{1, k}) },
			"struct %#v":         func() string { return fmt.Sprintf("%#v", exported{1, k}) },
			"unexported %+v":     func() string { return fmt.Sprintf("%+v", unexported{1, k}) },
			"unexported %#v":     func() string { return fmt.Sprintf("%#v", unexported{1, k}) },
			"unexported ptr %+v": func() string { return fmt.Sprintf("%+v %#v", &unexported{1, k}, &unexported{1, k}) },
			"field pointer":      func() string { return fmt.Sprintf("%+v %#v", pointer{&k}, pointer{&k}) },
			"error wrap":         func() string { return fmt.Errorf("key %v: %w", k, http.ErrNoCookie).Error() },
			"json":               func() string { return mustJSON(t, k) },
			"json pointer":       func() string { return mustJSON(t, &k) },
			"json struct":        func() string { return mustJSON(t, exported{1, k}) },
			"json map":           func() string { return mustJSON(t, map[string]Key{"k": k}) },
			"json slice":         func() string { return mustJSON(t, []Key{k, k}) },
			"slog json": func() string {
				return logged(t, true, func(l *slog.Logger) {
					l.Info("m", "key", k, slog.Any("p", &k), slog.Group("g", "key", k), "s", exported{1, k})
					l.With("key", k).WithGroup("w").Info("m", "key", k)
				})
			},
			"slog text": func() string {
				return logged(t, false, func(l *slog.Logger) {
					l.Info("m", "key", k, slog.Any("p", &k), slog.Group("g", "key", k), "s", exported{1, k})
					l.With("key", k).WithGroup("w").Info("m", "key", k, "u", unexported{1, k})
				})
			},
		}
		for name, print := range prints {
			t.Run(k.String()+"/"+name, func(t *testing.T) {
				out := print()
				assertNoLeak(t, out, raw)
				if !strings.Contains(out, k.String()) && !strings.Contains(name, "unexported") &&
					!strings.Contains(name, "%T") {
					t.Fatalf("output lacks the masked form %q:\n%s", k, out)
				}
			})
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}

func logged(t *testing.T, asJSON bool, log func(*slog.Logger)) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if asJSON {
		h = slog.NewJSONHandler(&buf, nil)
	}
	log(slog.New(h))
	return buf.String()
}

func TestMarshalJSONEscapes(t *testing.T) {
	tests := []struct {
		name, raw string
	}{
		{"quote", `sk-abcdefghijkl"xyz`},
		{"backslash", `sk-abcdefghijklx\yz`},
		{"control", "sk-abcdefghijklxy\x01z"},
		{"split rune", "sk-abcdefghijklmnop€"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New(tt.raw)
			out := mustJSON(t, map[string]any{"k": k, "l": []Key{k}})
			var back map[string]any
			if err := json.Unmarshal([]byte(out), &back); err != nil {
				t.Fatalf("invalid JSON %s: %v", out, err)
			}
		})
	}
}

func TestSetAuthorization(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer client-token"}, "X-Other": {"1"}}
	k := New(orKey)
	k.SetAuthorization(h)
	if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+orKey {
		t.Fatalf("Authorization = %q", got)
	}
	if h.Get("X-Other") != "1" {
		t.Fatal("other headers touched")
	}
	h2 := http.Header{}
	New(plain).SetAuthorization(h2)
	if got := h2.Get("Authorization"); got != "Bearer "+plain {
		t.Fatalf("Authorization = %q", got)
	}
	if h.Get("Authorization") != "Bearer "+orKey {
		t.Fatal("a second key changed the first header")
	}
	Key{}.SetAuthorization(h)
	if _, ok := h["Authorization"]; ok {
		t.Fatal("zero Key left an Authorization header")
	}
}

func TestSetAuthorizationAllocs(t *testing.T) {
	k, h := New(orKey), http.Header{}
	if n := testing.AllocsPerRun(100, func() { k.SetAuthorization(h) }); n != 0 {
		t.Fatalf("SetAuthorization allocates %v times", n)
	}
}

func TestRedactor(t *testing.T) {
	short := "sk-or-v1-aaaaaaaaaaaaaaaaaaaaaaaa"
	long := short + "bbbbbbbbbbbbbbbbbbbbbbbbzzzz"
	r := NewRedactor([]Key{New(orKey), {}, New(short), New(long), New(plain)})
	tests := []struct {
		name, in, want string
		raws           []string
	}{
		{"none", "nothing secret here", "nothing secret here", nil},
		{"empty", "", "", nil},
		{"one", `{"error":"invalid key ` + orKey + `"}`, `{"error":"invalid key sk-or-v1-…c0de"}`, []string{orKey}},
		{"twice", orKey + " and " + orKey, "sk-or-v1-…c0de and sk-or-v1-…c0de", []string{orKey}},
		{"two keys", plain + "/" + orKey, "sk-…9876/sk-or-v1-…c0de", []string{orKey, plain}},
		{"key extending another", "key=" + long + ";", "key=sk-or-v1-…zzzz;", []string{long}},
		{"shorter alone", "key=" + short + ";", "key=sk-or-v1-…aaaa;", []string{short}},
		{"glued to text", "xx" + orKey + "yy", "xxsk-or-v1-…c0deyy", []string{orKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Redact(tt.in)
			if got != tt.want {
				t.Fatalf("Redact = %q, want %q", got, tt.want)
			}
			for _, raw := range tt.raws {
				assertNoLeak(t, got, raw)
			}
		})
	}
	if got := NewRedactor(nil).Redact(orKey); got != orKey {
		t.Fatalf("empty Redactor changed text: %q", got)
	}
}

// TestRedactPrefix: for a text that goes on, everything that cannot be the
// start of a key cut by the end is masked and consumed; the rest is held.
func TestRedactPrefix(t *testing.T) {
	short := "sk-or-v1-aaaaaaaaaaaaaaaaaaaaaaaa"
	long := short + "bbbbbbbbbbbbbbbbbbbbbbbbzzzz"
	r := NewRedactor([]Key{New(short), New(long)})
	tests := []struct {
		name, in, want string
		n              int
	}{
		{"no key", "plain text", "plain text", 10},
		{"whole key", "a " + long + " b", "a sk-or-v1-…zzzz b", len("a " + long + " b")},
		{"cut key held", "a " + long[:20], "a ", 2},
		{"shorter key inside a cut longer one", "a " + long[:len(short)+5], "a ", 2},
		{"short key whole, text after it", "a " + short + "!", "a sk-or-v1-…aaaa!", len("a " + short + "!")},
		{"masked, then a cut key", short + " x " + long[:12], "sk-or-v1-…aaaa x ", len(short + " x ")},
		{"prefix of the public part held", "x sk-or", "x ", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := r.RedactPrefix(tt.in)
			if got != tt.want || n != tt.n {
				t.Fatalf("RedactPrefix(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.n)
			}
			// Fed again with its end, the held part is masked as Redact does.
			rest := tt.in[n:] + " end"
			if whole := got + r.Redact(rest); whole != r.Redact(tt.in+" end") {
				t.Fatalf("in two parts %q, whole %q", whole, r.Redact(tt.in+" end"))
			}
		})
	}
}

// FuzzMask checks what Mask can promise for any input. Its output is at
// most a known prefix, "…" and four bytes, so every 12-byte window of the
// output spans the whole "…": the output shares no 12 consecutive bytes
// with an input that does not itself contain "…" (one that does, such as
// "sk-or-v1-…", can share its public prefix and that ellipsis, which is
// nothing secret). This holds for inputs of any length, not only ≥ 16.
func FuzzMask(f *testing.F) {
	for _, s := range []string{orKey, projKey, plain, bare, "", "sk-", "sk-or-v1-", "sk-or-v1-…abc", "€€€€€€€€€€€€", "sk-or-v1-abcdefgh1234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Mask(in)
		if len(out) > len("sk-or-v1-")+len("…")+4 {
			t.Fatalf("Mask(%q) = %q: too long", in, out)
		}
		prefix, tail, ok := strings.Cut(out, "…")
		if !ok || !strings.HasPrefix(in, prefix) {
			t.Fatalf("Mask(%q) = %q: not prefix…tail", in, out)
		}
		if tail != "" && (len(tail) != 4 || !strings.HasSuffix(in, tail) || len(in)-len(prefix)-4 < 8) {
			t.Fatalf("Mask(%q) = %q: shows a tail with fewer than 8 bytes hidden", in, out)
		}
		if !strings.Contains(in, "…") {
			if !IsMask(out) {
				t.Fatalf("Mask(%q) = %q: IsMask says it is none", in, out)
			}
			if w, leak := leaks(out, in); leak {
				t.Fatalf("Mask(%q) = %q: shares %q", in, out, w)
			}
		}
	})
}

// BenchmarkRedactManyQuotes: a 1 MiB text quoting one key of four every
// 200 bytes. Each key is searched for once per pass over the text, so the
// cost grows with the text, not with text × quotes.
func BenchmarkRedactManyQuotes(b *testing.B) {
	keys := []Key{New(orKey), New(projKey), New(plain), New("sk-or-v1-absent-key-0123456789abcdef")}
	r := NewRedactor(keys)
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		sb.WriteString(strings.Repeat("x", 200-len(orKey)))
		sb.WriteString(orKey)
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		r.Redact(text)
	}
}

// TestRedactURLEncoded: a key holding '+', '/' or '=' (a base64 key of an
// upstream other than OpenRouter) is masked where a URL quotes it
// percent-encoded, with upper or lower hex digits, whole or cut between
// two writes; a key without such characters has no other form.
func TestRedactURLEncoded(t *testing.T) {
	b64 := "gsk_Ab3+Cd4/Ef5+Gh6/Ij7+Kl8/Mn9=="
	lowHex := strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d")
	r := NewRedactor([]Key{New(b64), New(orKey)})
	for _, in := range []string{
		"https://up.example/auth?key=" + url.QueryEscape(b64) + "&x=1",
		"https://up.example/keys/" + url.PathEscape(b64) + "/usage",
		"key=" + lowHex.Replace(url.QueryEscape(b64)),
		"/keys/" + lowHex.Replace(url.PathEscape(b64)),
		`{"next":"` + url.QueryEscape(b64) + `"}`,
	} {
		var buf bytes.Buffer
		w := NewWriter(r, &buf)
		for _, piece := range []string{in[:len(in)/3], in[len(in)/3 : 2*len(in)/3], in[2*len(in)/3:]} {
			if _, err := w.Write([]byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for _, out := range []string{r.Redact(in), buf.String()} {
			if strings.Contains(out, "Cd4") || strings.Contains(out, "Mn9") {
				t.Errorf("%q: masked to %q, which still shows the key", in, out)
			}
		}
		if buf.Len() != len(in) {
			t.Errorf("%q: the Writer's mask changed the length to %d", in, buf.Len())
		}
	}
	if got := len(NewRedactor([]Key{New(orKey)}).keys); got != 1 {
		t.Errorf("an OpenRouter key has %d forms, want 1", got)
	}
}
