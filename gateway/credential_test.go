package gateway

import (
	"strings"
	"testing"
)

// TestCredentialShaped: a name is credential-shaped when it holds one of
// credentialWords in any case and at any place, unless it is a harmless
// name.
func TestCredentialShaped(t *testing.T) {
	for name, want := range map[string]bool{
		"Authorization": true, "Proxy-Authorization": true, "X-Api-Key": true, "X_Api_Key": true,
		"Cookie": true, "Cookie2": true, "X-Auth-Token": true, "X-Goog-Api-Key": true, "Session-Id": true,
		"X-Client-Secret": true, "X-Password": true, "X-Credentials": true, "X-Amz-Signature": true,
		"x-api-KEY": true, "KEY": true, "xtokenx": true, "monkey": true,
		"Idempotency-Key": false, "IDEMPOTENCY-KEY": false,
		"Content-Type": false, "User-Agent": false, "Accept": false, "X-Title": false, "HTTP-Referer": false,
		"Anthropic-Beta": false, "X-Stainless-Os": false, "": false, "ke": false, "toke": false, "Passport": false,
		strings.Repeat("x", 100) + "-Key": true, strings.Repeat("x", 100): false,
	} {
		if got := credentialShaped(name); got != want {
			t.Errorf("credentialShaped(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzCredentialShaped checks the one-pass search against the plain
// reading of the rule: the name, lower-cased, contains a word.
func FuzzCredentialShaped(f *testing.F) {
	for _, s := range []string{"Authorization", "X-Api-Key", "Idempotency-Key", "Content-Type", "kEy", "sessio", "\xffkey", "K\u212aey"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := false
		if !strings.EqualFold(name, "Idempotency-Key") {
			low := []byte(name)
			for i, c := range low {
				if 'A' <= c && c <= 'Z' {
					low[i] = c + 'a' - 'A'
				}
			}
			for _, w := range credentialWords {
				if strings.Contains(string(low), w) {
					want = true
				}
			}
		}
		if got := credentialShaped(name); got != want {
			t.Fatalf("credentialShaped(%q) = %v, want %v", name, got, want)
		}
	})
}
