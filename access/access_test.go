package access

import (
	"net/http/httptest"
	"testing"

	"github.com/keygate/keygate/secret"
)

func TestGuard(t *testing.T) {
	clients := []secret.Key{secret.New("client-one"), secret.New("client-two")}
	admin := secret.New("admin-token")
	tests := []struct {
		name          string
		g             *Guard
		auth          string
		viewer, admin bool
	}{
		{"open page, no header", New(nil, secret.Key{}), "", true, false},
		{"open page, admin off, any token", New(nil, secret.Key{}), "Bearer admin-token", true, false},
		{"open page, admin token", New(nil, admin), "Bearer admin-token", true, true},
		{"open page, wrong admin token", New(nil, admin), "Bearer admin-tokeN", true, false},
		{"tokens, none given", New(clients, admin), "", false, false},
		{"tokens, client", New(clients, admin), "Bearer client-two", true, false},
		{"tokens, client in lower-case scheme", New(clients, admin), "bearer   client-one", true, false},
		{"tokens, admin", New(clients, admin), "Bearer admin-token", true, true},
		{"tokens, wrong", New(clients, admin), "Bearer client-three", false, false},
		{"tokens, prefix of a token", New(clients, admin), "Bearer client", false, false},
		{"tokens, basic scheme", New(clients, admin), "Basic client-one", false, false},
		{"tokens, empty bearer", New(clients, admin), "Bearer ", false, false},
		{"client tokens, admin off, admin-like token", New(clients, secret.Key{}), "Bearer admin-token", false, false},
		{"zero guard", &Guard{}, "Bearer x", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/status.json", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if got := tt.g.Viewer(r); got != tt.viewer {
				t.Errorf("Viewer = %v, want %v", got, tt.viewer)
			}
			if got := tt.g.Admin(r); got != tt.admin {
				t.Errorf("Admin = %v, want %v", got, tt.admin)
			}
		})
	}
}

func TestGuardSettings(t *testing.T) {
	g := New([]secret.Key{{}, secret.New("c")}, secret.Key{})
	if !g.TokenRequired() || g.AdminEnabled() {
		t.Fatalf("TokenRequired %v AdminEnabled %v, want true false", g.TokenRequired(), g.AdminEnabled())
	}
	if g := New([]secret.Key{{}}, secret.New("a")); g.TokenRequired() || !g.AdminEnabled() {
		t.Fatalf("only a zero client token: TokenRequired %v, AdminEnabled %v", g.TokenRequired(), g.AdminEnabled())
	}
}

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic x", "Bearer", "", "Bearer \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := Bearer(v)
		if ok != (tok != "") {
			t.Fatalf("Bearer(%q) = %q, %v", v, tok, ok)
		}
		if ok && (tok[0] == ' ' || tok[len(tok)-1] == ' ') {
			t.Fatalf("Bearer(%q) = %q, untrimmed", v, tok)
		}
		g := New([]secret.Key{secret.New(tok)}, secret.Key{})
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if ok && !g.Viewer(r) {
			t.Fatalf("token %q not recognised", tok)
		}
	})
}
