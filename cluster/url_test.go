package cluster

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, network, addr string
		db                 int
		user, pass         string
		tls                bool
	}{
		{"redis://localhost:6379/0", "tcp", "localhost:6379", 0, "", "", false},
		{"redis://redis", "tcp", "redis:6379", 0, "", "", false},
		{"redis://:s3cretpass@redis:6380/2", "tcp", "redis:6380", 2, "", "s3cretpass", false},
		{"redis://app:pw@10.0.0.5:6379", "tcp", "10.0.0.5:6379", 0, "app", "pw", false},
		{"rediss://app:pw@cache.example.com:6380/1", "tcp", "cache.example.com:6380", 1, "app", "pw", true},
		{"redis://[::1]:6379", "tcp", "[::1]:6379", 0, "", "", false},
		{"unix:///run/redis/redis.sock", "unix", "/run/redis/redis.sock", 0, "", "", false},
		{"unix:///run/redis.sock?db=3", "unix", "/run/redis.sock", 3, "", "", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if o.Network != tc.network || o.Addr != tc.addr || o.DB != tc.db || o.Username != tc.user || o.Password != tc.pass || (o.TLSConfig != nil) != tc.tls {
				t.Fatalf("got %s %s db %d user %q tls %v", o.Network, o.Addr, o.DB, o.Username, o.TLSConfig != nil)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	const pw = "hunter2-very-secret"
	for _, tc := range []struct{ url, want string }{
		{"localhost:6379", "scheme"},
		{"http://redis:6379", `scheme "http"`},
		{"redis://", "no host"},
		{"redis://:" + pw + "@redis:99999", "port"},
		{"redis://:" + pw + "@redis:6379/abc", "database number"},
		{"redis://:" + pw + "@redis:6379/1/2", "database number"},
		{"unix://relative.sock", "absolute path"},
		{"redis://:" + pw + "@redis:6379/0?nonsense=1", "nonsense"},
		{"redis://:" + pw + "@red is:6379", "does not parse"},
		{"redis://u:" + pw + "@[::1", "does not parse"},
		{"", "scheme"},
		// A scheme typed without its two slashes: url.Parse finds no user
		// info, so only a rule that reads raw as written hides it.
		{"redis:/:" + pw + "@redis:6379", "no host"},
		{"redis:u:" + pw + "@redis:6379", "no host"},
		{"rediss:/u:" + pw + "@redis", "no host"},
		{"unix:u:" + pw + "@redis.sock", "absolute path"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := ParseURL(tc.url)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !errors.Is(err, ErrURL) || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want ErrURL saying %q", msg, tc.want)
			}
			if strings.Contains(msg, pw) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q prints the password or spans lines", msg)
			}
		})
	}
}

// TestParseURLErrorsQuoteNoPiece: a password holding '#', '/' or '?' keeps
// url.Parse from seeing it as one, and its errors would quote a piece of it
// (as a "port", or as the fragment): none is shown.
func TestParseURLErrorsQuoteNoPiece(t *testing.T) {
	for _, tc := range []struct{ url, piece string }{
		{"redis://:#Rpass1secret@127.0.0.1:6379", "Rpass1"},
		{"redis://user:Ab/Cd+ef9secret@127.0.0.1:6379/0", `":Ab"`},
		{"redis://:abc#defsecret@127.0.0.1:6379", `":abc"`},
		{"redis://u:pa?ss@h:6379", `":pa"`},
	} {
		_, err := ParseURL(tc.url)
		if err == nil {
			continue // a URL go-redis reads some other way is not an error message
		}
		if strings.Contains(err.Error(), tc.piece) || strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q): error %q quotes part of the password", tc.url, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://:pw@redis:6379/0", "rediss://u:p@h:1/15", "unix:///x.sock?db=1", "redis://[::1", "redis://h:0", "unix://a", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := ParseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrURL) {
				t.Fatalf("error %v does not wrap ErrURL", err)
			}
			return
		}
		if o.Addr == "" || (o.Network != "tcp" && o.Network != "unix") {
			t.Fatalf("accepted %q as %s %q", raw, o.Network, o.Addr)
		}
	})
}
