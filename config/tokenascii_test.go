package config

import (
	"strings"
	"testing"
)

// TestTokensArePrintableASCII: an ADMIN_TOKEN with a blank or a character
// past ASCII was accepted at start-up, and then the status page's sign-in
// (fetch wants Latin-1 headers) and Node's HTTP client could not send it;
// a client token past ASCII likewise. Both are refused at start-up, saying
// why, without quoting the token.
func TestTokensArePrintableASCII(t *testing.T) {
	key := "OPENROUTER_API_KEY_1=" + testKey("1")
	for _, tc := range []struct {
		env, want string
	}{
		{"ADMIN_TOKEN=admin token 1234567890abcdef", "ADMIN_TOKEN"},
		{"ADMIN_TOKEN=admintok\u00e9n1234567890abcdef", "ADMIN_TOKEN"},
		{"ADMIN_TOKEN=\u201cadmintoken1234567890abcdef\u201d", "ADMIN_TOKEN"},
		{"GATEWAY_API_KEYS=client-token-1234567890,cli\u00ebnt-token-1234567890", "token 2 holds a character past ASCII"},
	} {
		_, err := Load([]string{key, tc.env}, nil, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a refusal naming %s", tc.env, err, tc.want)
			continue
		}
		if v := tc.env[strings.Index(tc.env, "=")+1:]; strings.Contains(err.Error(), v) || strings.Contains(err.Error(), "1234567890") {
			t.Errorf("%q: the refusal quotes the token: %v", tc.env, err)
		}
	}
	if _, err := Load([]string{key, "ADMIN_TOKEN=admin-token_1234567890.abcdef~!", "GATEWAY_API_KEYS=client-token-1234567890"}, nil, false); err != nil {
		t.Errorf("printable ASCII tokens refused: %v", err)
	}
}
