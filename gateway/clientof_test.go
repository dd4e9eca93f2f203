package gateway

import (
	"net/http/httptest"
	"testing"
)

// TestClientOfGroupsAnIPv6Slash64: without tokens a client is its address,
// and an IPv6 host picks any address of its /64 at will: two addresses of
// one /64 are one client for the bound on rests (CLIENT_REST_SHARE), so
// that a client cannot rest the pool share by share, an address each.
func TestClientOfGroupsAnIPv6Slash64(t *testing.T) {
	tests := []struct {
		name   string
		a, b   string // RemoteAddr of two requests
		tokens bool
		same   bool
	}{
		{"IPv6, one /64", "[2001:db8:1:2::1]:40000", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:40001", false, true},
		{"IPv6, one /64, zoned", "[fe80::1%eth0]:1", "[fe80::2%eth0]:2", false, true},
		{"IPv6, two /64s", "[2001:db8:1:2::1]:40000", "[2001:db8:1:3::1]:40000", false, false},
		{"IPv4, two addresses", "192.0.2.1:40000", "192.0.2.2:40000", false, false},
		{"IPv4, one address, two ports", "192.0.2.1:40000", "192.0.2.1:40001", false, true},
		{"IPv4 in IPv6 is its IPv4 address", "[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.2]:1", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			ra.RemoteAddr = tt.a
			rb := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			rb.RemoteAddr = tt.b
			ca, cb := clientOf(ra, tt.tokens), clientOf(rb, tt.tokens)
			if (ca == cb) != tt.same {
				t.Errorf("clients %q and %q: same = %v, want %v", ca, cb, ca == cb, tt.same)
			}
			if ca == "" || cb == "" {
				t.Errorf("empty client name: %q, %q", ca, cb)
			}
		})
	}
}
