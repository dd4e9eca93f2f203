package secret

import (
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	// Two OpenRouter keys that share the last four, and two short keys
	// (masked as the prefix alone): their masks match, their
	// fingerprints must not.
	sameLast := [2]string{orKey, strings.Replace(orKey, "sk-or-v1-", "sk-or-v1-f", 1)}
	short := [2]string{"sk-or-v1-abc", "sk-or-v1-xyz"}
	for _, pair := range [][2]string{sameLast, short} {
		a, b := New(pair[0]), New(pair[1])
		if a.String() != b.String() {
			t.Fatalf("test keys should share a mask: %v, %v", a, b)
		}
		if a.Fingerprint() == b.Fingerprint() {
			t.Fatalf("keys masked %v share fingerprint %s", a, a.Fingerprint())
		}
	}
	k := New(orKey)
	fp := k.Fingerprint()
	if fp != New(" "+orKey+"\n").Fingerprint() {
		t.Fatal("fingerprint is not a function of the key")
	}
	if !IsFingerprint(fp) || IsMask(fp) {
		t.Fatalf("Fingerprint() = %q: IsFingerprint %v, IsMask %v", fp, IsFingerprint(fp), IsMask(fp))
	}
	assertNoLeak(t, fp, orKey)
	if (Key{}).Fingerprint() != "" {
		t.Fatal("the zero Key has a fingerprint")
	}
}

func TestIsFingerprint(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"fp-0123456789abcdef", true},
		{"fp-0123456789ABCDEF", false},
		{"fp-0123456789abcde", false},
		{"fp-0123456789abcdef0", false},
		{"fp-0123456789abcdeg", false},
		{"0123456789abcdef", false},
		{"sk-or-v1-…3f2a", false},
		{orKey, false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsFingerprint(tt.s); got != tt.want {
			t.Errorf("IsFingerprint(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
