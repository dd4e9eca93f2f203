package secret

import (
	"strings"
	"testing"
)

func TestHideUserinfo(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		hidden    bool
	}{
		{"redis://cache:6379/0", "redis://cache:6379/0", false},
		{"redis://:pw@cache:6379", "redis://…@cache:6379", true},
		{"rediss://user:pw@cache", "rediss://…@cache", true},
		{"redis:/user:pw@cache", "redis:/…@cache", true},
		{"rediss:/:pw@cache", "rediss:/…@cache", true},
		{"redis:user:pw@cache", "…@cache", true},
		{"user:pw@cache", "…@cache", true},
		{"https://TOKEN@up.example/v1", "https://…@up.example/v1", true},
		{"https://u:a#b/c?d@e@up.example/v1", "https://…@up.example/v1", true},
		{"https://u:p@", "https://…@", true},
		{"1x://u:p@h", "…@h", true},
		{"redis:/@h", "redis:/…@h", true},
		{"", "", false},
	} {
		got, hidden := HideUserinfo(tc.raw)
		if got != tc.want || hidden != tc.hidden {
			t.Errorf("HideUserinfo(%q) = %q, %v; want %q, %v", tc.raw, got, hidden, tc.want, tc.hidden)
		}
	}
}

// FuzzHideUserinfo: nothing before the last '@' is shown but a scheme and
// its slashes, and everything from the '@' on is kept as it was.
func FuzzHideUserinfo(f *testing.F) {
	for _, s := range []string{"redis://:pw@h:1", "redis:/u:p@h", "redis:u:p@h", "https://a@b@c/d", "x", "@", ":/@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, hidden := HideUserinfo(raw)
		at := strings.LastIndexByte(raw, '@')
		if at < 0 {
			if hidden || got != raw {
				t.Fatalf("HideUserinfo(%q) = %q, %v: changed a URL without '@'", raw, got, hidden)
			}
			return
		}
		head, tail, ok := strings.Cut(got, "…")
		if !hidden || !ok || tail != raw[at:] {
			t.Fatalf("HideUserinfo(%q) = %q, %v: want head…%s", raw, got, hidden, raw[at:])
		}
		if s := strings.TrimRight(head, "/"); head != "" && (!strings.HasSuffix(s, ":") || !isScheme(s[:len(s)-1]) || s == head) {
			t.Fatalf("HideUserinfo(%q) = %q: shows %q, more than a scheme", raw, got, head)
		}
	})
}
