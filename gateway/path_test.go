package gateway

import (
	"net/url"
	"strings"
	"testing"
)

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", s, err)
	}
	return u
}

func TestMapPath(t *testing.T) {
	tests := []struct {
		name, base, in string
		want           string // the target URL; "" when refused
	}{
		{"chat", "https://openrouter.ai/api/v1", "/v1/chat/completions", "https://openrouter.ai/api/v1/chat/completions"},
		{"query kept", "https://openrouter.ai/api/v1", "/v1/models?supported_parameters=tools&x=%20y", "https://openrouter.ai/api/v1/models?supported_parameters=tools&x=%20y"},
		{"bare /v1", "https://openrouter.ai/api/v1", "/v1", "https://openrouter.ai/api/v1"},
		{"trailing slash", "https://openrouter.ai/api/v1", "/v1/", "https://openrouter.ai/api/v1/"},
		{"root base", "http://127.0.0.1:8080", "/v1/models", "http://127.0.0.1:8080/models"},
		{"escaped segment kept escaped", "https://h/api/v1", "/v1/files/a%2Fb", "https://h/api/v1/files/a%2Fb"},
		{"escaped base", "https://h/a%20b", "/v1/x%2Fy", "https://h/a%20b/x%2Fy"},
		{"escaped slash in base", "https://h/a%2Fb", "/v1/models", "https://h/a%2Fb/models"},
		{"space", "https://h/api/v1", "/v1/a%20b", "https://h/api/v1/a%20b"},
		{"fragment dropped", "https://h/api/v1", "/v1/x#frag", "https://h/api/v1/x"},
		{"dots inside a name", "https://h/api/v1", "/v1/a..b/.c/d.", "https://h/api/v1/a..b/.c/d."},
		{"dot-dot", "https://h/api/v1", "/v1/../admin", ""},
		{"dot", "https://h/api/v1", "/v1/./models", ""},
		{"trailing dot-dot", "https://h/api/v1", "/v1/a/..", ""},
		{"encoded dot-dot", "https://h/api/v1", "/v1/%2e%2e/admin", ""},
		{"mixed-case encoding", "https://h/api/v1", "/v1/%2E./admin", ""},
		{"encoded slash hides dot-dot", "https://h/api/v1", "/v1/a%2F..%2Fadmin", ""},
		{"backslash", "https://h/api/v1", "/v1/..\\admin", ""},
		{"encoded backslash", "https://h/api/v1", "/v1/a%5Cb", ""},
		{"not under /v1", "https://h/api/v1", "/v10/models", ""},
		{"other prefix", "https://h/api/v1", "/run", ""},
		{"api prefix", "https://openrouter.ai/api/v1", "/api/v1/chat/completions", "https://openrouter.ai/api/v1/chat/completions"},
		{"bare /api/v1", "https://openrouter.ai/api/v1", "/api/v1", "https://openrouter.ai/api/v1"},
		{"api prefix, query and escapes kept", "https://h/api/v1", "/api/v1/models/a%2Fb?x=%20y", "https://h/api/v1/models/a%2Fb?x=%20y"},
		{"api prefix, dot-dot", "https://h/api/v1", "/api/v1/../keys", ""},
		{"api prefix, encoded dot-dot", "https://h/api/v1", "/api/v1/%2e%2e/keys", ""},
		{"api prefix escaped", "https://h/api/v1", "/api%2Fv1/models", ""},
		{"not under /api/v1", "https://h/api/v1", "/api/v10/models", ""},
		{"/api alone", "https://h/api/v1", "/api/models", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapPath(mustURL(t, tt.base), mustURL(t, tt.in))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("mapPath(%q) = %v, want refused", tt.in, got)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("mapPath(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzMapPath: for any request target, mapPath never panics, and what it
// accepts stays under the base path, with no dot segment in either the
// decoded path or the escaped one upstream will decode, and keeps the
// query.
func FuzzMapPath(f *testing.F) {
	for _, s := range []string{
		"/v1/chat/completions", "/v1", "/v1/", "/v1/models?x=1", "/v1/a%2Fb", "/v1/%2e%2e/x", "/v1/..", "/v1/a/../b",
		"/v1/a%2F..%2Fb", "/v1//x", "/v1/%252e%252e/x", "/v1/a%5C..", "/v1/%zz", "/v1?q", "/v10", "//v1/x", "/v1/.%2e/x",
	} {
		f.Add(s, "/api/v1")
		f.Add("/api"+s, "/api/v1")
	}
	f.Add("/v1/x", "")
	f.Add("/v1/x", "/a%2Fb")
	f.Add("/v1/x%2Fy", "/a%2F")
	f.Fuzz(func(t *testing.T, target, basePath string) {
		in, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		base, err := url.Parse("https://upstream.example" + basePath)
		// As config leaves it: no query, no trailing slash.
		if err != nil || base.Host != "upstream.example" || base.RawQuery != "" || base.Fragment != "" ||
			hasDotSegment(base.Path) || strings.HasSuffix(base.EscapedPath(), "/") {
			return
		}
		out, err := mapPath(base, in)
		if err != nil {
			return
		}
		if out.Scheme != base.Scheme || out.Host != base.Host || out.RawQuery != in.RawQuery || out.Fragment != "" {
			t.Fatalf("mapPath(%q) = %v: scheme, host or query changed", target, out)
		}
		rest, ok := strings.CutPrefix(out.Path, base.Path)
		if !ok || (rest != "" && rest[0] != '/') {
			t.Fatalf("mapPath(%q) = path %q, not under %q", target, out.Path, base.Path)
		}
		if hasDotSegment(rest) {
			t.Fatalf("mapPath(%q) = path %q with a dot segment", target, out.Path)
		}
		escaped := out.EscapedPath()
		if !strings.HasPrefix(escaped, base.EscapedPath()) {
			t.Fatalf("mapPath(%q) = escaped path %q, not under %q", target, escaped, base.EscapedPath())
		}
		decoded, err := url.PathUnescape(escaped[len(base.EscapedPath()):])
		if err != nil || hasDotSegment(decoded) || strings.Contains(decoded, "\\") {
			t.Fatalf("mapPath(%q) = escaped path %q: upstream decodes %q (%v)", target, escaped, decoded, err)
		}
	})
}

// TestDescribesKeyAllocatesNothing: it runs on every /v1 request.
func TestDescribesKeyAllocatesNothing(t *testing.T) {
	for _, p := range []string{"/chat/completions", "/auth//key;x"} {
		if n := testing.AllocsPerRun(100, func() { describesKey(p) }); n != 0 {
			t.Errorf("describesKey(%q): %v allocations", p, n)
		}
	}
}
