package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/secret"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load([]string{"OPENROUTER_API_KEY_1=" + testKey("1")}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL != "https://openrouter.ai/api/v1" || c.Port != 4000 || c.KeyRotation != "random" ||
		c.RateLimitCooldown != 30*time.Second || c.AuthFailureCooldown != 10*time.Minute ||
		c.UpstreamTimeout != 120*time.Second || c.MaxBodyBytes != 10485760 || c.LogFormat != "text" ||
		c.ShutdownTimeout != 30*time.Second || c.ReadBodyTimeout != 60*time.Second || len(c.GatewayAPIKeys) != 0 {
		t.Fatalf("defaults wrong: %+v", c)
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		dotenv  map[string]string
		ids     []int
		dups    []Duplicate
	}{
		{name: "numbered with gaps", environ: []string{"OPENROUTER_API_KEY_7=" + testKey("k7"), "OPENROUTER_API_KEY_2=" + testKey("k2")}, ids: []int{2, 7}},
		{name: "list", environ: []string{"OPENROUTER_API_KEYS=" + testKey("a") + ", " + testKey("b") + ",," + testKey("c")}, ids: []int{1, 2, 4}},
		{name: "numbered beat list", environ: []string{"OPENROUTER_API_KEYS=" + testKey("a"), "OPENROUTER_API_KEY_5=" + testKey("k5")}, ids: []int{5}},
		{name: "duplicates once", environ: []string{"OPENROUTER_API_KEY_1=" + testKey("same"), "OPENROUTER_API_KEY_3=" + testKey("same"), "OPENROUTER_API_KEY_2=" + testKey("other")},
			ids: []int{1, 2}, dups: []Duplicate{{ID: 3, SameAs: 1}}},
		{name: "from dotenv", dotenv: map[string]string{"OPENROUTER_API_KEY_1": testKey("d")}, ids: []int{1}},
		{name: "empty values skipped", environ: []string{"OPENROUTER_API_KEY_1=", "OPENROUTER_API_KEY_2=" + testKey("x")}, ids: []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.environ, tc.dotenv, true)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int
			for _, k := range c.Keys {
				ids = append(ids, k.ID)
			}
			if !equal(ids, tc.ids) {
				t.Fatalf("ids %v, want %v", ids, tc.ids)
			}
			if len(c.Duplicates) != len(tc.dups) || (len(tc.dups) > 0 && c.Duplicates[0] != tc.dups[0]) {
				t.Fatalf("duplicates %v, want %v", c.Duplicates, tc.dups)
			}
		})
	}
}

func TestEnvironmentBeatsDotenv(t *testing.T) {
	c, err := Load([]string{"PORT=5000", "OPENROUTER_API_KEY_1=" + testKey("env")},
		map[string]string{"PORT": "6000", "KEY_ROTATION": "least-busy", "OPENROUTER_API_KEY_1": testKey("file")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 5000 || c.KeyRotation != "least-busy" {
		t.Fatalf("port %d rotation %s", c.Port, c.KeyRotation)
	}
	if !c.Keys[0].Secret.Equal(secret.New(testKey("env"))) || !strings.HasPrefix(c.Keys[0].Secret.GoString(), "secret.Key") {
		t.Fatalf("key from the wrong source: %v", c.Keys[0].Secret)
	}
}

func TestBadSettings(t *testing.T) {
	key := "OPENROUTER_API_KEY_1=" + testKey("1")
	for _, tc := range []struct {
		name, env, want string
	}{
		{"rotation", "KEY_ROTATION=sometimes", "KEY_ROTATION"},
		{"port text", "PORT=abc", "PORT"},
		{"port range", "PORT=70000", "PORT"},
		{"base url", "OPENROUTER_BASE_URL=::not a url", "OPENROUTER_BASE_URL"},
		{"base url scheme", "OPENROUTER_BASE_URL=ftp://x/y", "OPENROUTER_BASE_URL"},
		{"duration", "RATE_LIMIT_COOLDOWN=soon", "RATE_LIMIT_COOLDOWN"},
		{"negative duration", "AUTH_FAILURE_COOLDOWN=-1s", "AUTH_FAILURE_COOLDOWN"},
		{"negative stream hold", "STREAM_HOLD_TIMEOUT=-1s", "invalid STREAM_HOLD_TIMEOUT=-1s"},
		{"negative poll interval", "BUDGET_POLL_INTERVAL=-1s", "invalid BUDGET_POLL_INTERVAL=-1s"},
		{"a poll interval under a second", "BUDGET_POLL_INTERVAL=1ms", "invalid BUDGET_POLL_INTERVAL=1ms: want 0 (off) or at least 1s"},
		{"body", "MAX_BODY_BYTES=big", "MAX_BODY_BYTES"},
		{"log format", "LOG_FORMAT=xml", "LOG_FORMAT"},
		{"log level", "LOG_LEVEL=loud", "LOG_LEVEL"},
		{"key name", "OPENROUTER_API_KEY_X=abc", "OPENROUTER_API_KEY_X"},
		{"key zero", "OPENROUTER_API_KEY_0=abc", "OPENROUTER_API_KEY_0"},
		{"a key as the name", "OPENROUTER_API_KEY_7c1e94b2d05fa8e3916c4b7d2a08f5e1c3b96a74d82e0f15=1", "invalid variable name OPENROUTER_API_KEY_…: want"},
		{"tokens all blank", "GATEWAY_API_KEYS= , ,", "GATEWAY_API_KEYS"},
		{"body timeout", "READ_BODY_TIMEOUT=0s", "READ_BODY_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]string{key, tc.env}, nil, true)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q should name %s on one line", msg, tc.want)
			}
		})
	}
}

func TestNoKeys(t *testing.T) {
	_, err := Load(nil, nil, true)
	if !errors.Is(err, ErrNoKeys) || !strings.Contains(err.Error(), "OPENROUTER_API_KEY_1") || !strings.Contains(err.Error(), "OPENROUTER_API_KEYS") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(nil, nil, false); err != nil {
		t.Fatalf("keys not required: %v", err)
	}
}

// TestNoKeysNamesNearMisses: with no key variable set, variables that look
// meant as one (a typo, the singular OPENROUTER_API_KEY other tools read)
// are named by the error, never their values; other variables are not.
func TestNoKeysNamesNearMisses(t *testing.T) {
	k := testKey("1")
	for _, tc := range []struct {
		name    string
		environ []string
		dotenv  map[string]string
		want    string
	}{
		{"no underscore", []string{"OPENROUTER_API_KEY1=" + k}, nil, "(OPENROUTER_API_KEY1 is set, but is not one of these)"},
		{"singular, from .env", nil, map[string]string{"OPENROUTER_API_KEY": k}, "(OPENROUTER_API_KEY is set, but is not one of these)"},
		{"two, lower case", []string{"openrouter_api_key_1=" + k, "OPENROUTER_KEY_2=" + k}, nil, "(OPENROUTER_KEY_2 and openrouter_api_key_1 are set, but are not among these)"},
		{"a key in the name", []string{"OPENROUTER_KEY_" + k + "=1"}, nil, "(OPENROUTER_KEY_… is set, but is not one of these)"},
		{"blank and unrelated", []string{"OPENROUTER_API_KEY1=", "OPENROUTER_BASE_URL=https://openrouter.ai/api/v1", "KEYS_FILE_X=1", "GATEWAY_API_KEYS=tok"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.environ, tc.dotenv, true)
			if !errors.Is(err, ErrNoKeys) {
				t.Fatalf("err = %v, want ErrNoKeys", err)
			}
			msg := err.Error()
			if tc.want == "" && msg != ErrNoKeys.Error() {
				t.Fatalf("err = %q, want the bare %q", msg, ErrNoKeys)
			}
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, k[9:]) {
				t.Fatalf("err = %q, want it to hold %q and no key", msg, tc.want)
			}
		})
	}
}

func TestUsageListsEverySetting(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	for _, name := range []string{"OPENROUTER_API_KEY_1", "OPENROUTER_API_KEYS", "OPENROUTER_BASE_URL", "PORT", "KEY_ROTATION",
		"GATEWAY_API_KEYS", "RATE_LIMIT_COOLDOWN", "AUTH_FAILURE_COOLDOWN", "UPSTREAM_TIMEOUT", "MAX_BODY_BYTES", "LOG_FORMAT",
		"MAX_IN_FLIGHT", "SHUTDOWN_TIMEOUT", "READ_HEADER_TIMEOUT", "IDLE_TIMEOUT", "MAX_COOLDOWN"} {
		if !strings.Contains(b.String(), name) {
			t.Errorf("usage lacks %s", name)
		}
	}
	if !strings.Contains(b.String(), "https://openrouter.ai/api/v1") || !strings.Contains(b.String(), "10485760") {
		t.Error("usage lacks defaults")
	}
}

// testKey is a key shaped like OpenRouter's, derived from seed: random
// looking, so that no placeholder check takes it for one.
func testKey(seed string) string {
	sum := sha256.Sum256([]byte("keygate config test key " + seed))
	return "sk-or-v1-" + hex.EncodeToString(sum[:])
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGatewayTokensAreSecrets: client tokens are parsed into secret.Keys,
// blanks dropped, so printing the settings shows them masked.
func TestGatewayTokensAreSecrets(t *testing.T) {
	const tok = "client-token-0123456789-abcdef-wxyz"
	c, err := Load([]string{"OPENROUTER_API_KEY_1=" + testKey("1"), "GATEWAY_API_KEYS= " + tok + " ,, other-token-0123456789 "}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GatewayAPIKeys) != 2 || !c.GatewayAPIKeys[0].Equal(secret.New(tok)) {
		t.Fatalf("tokens %v, want the two given", c.GatewayAPIKeys)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, c); strings.Contains(out, "0123456789") {
			t.Errorf("%s of the settings shows a token: %s", format, out)
		}
	}
}

func TestRefusedSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		want    string // in the error
		never   string // never in the error
	}{
		{name: "newline in numbered key", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-7d2a\nbbbbbbbbbbbbbbbb"}, want: "OPENROUTER_API_KEY_1", never: "bbbbbbbb"},
		{name: "CR in listed key", environ: []string{"OPENROUTER_API_KEYS=sk-or-v1-5d8e1f3a9c7b2046e81d5a3f9b0c4e72,sk-or-v1-91c4\rdddddddddddddddd"}, want: "item 2", never: "dddddddd"},
		{name: "newline in client token", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-5d8e1f3a9c7b2046e81d5a3f9b0c4e72", "GATEWAY_API_KEYS=tok\nsecretpart"}, want: "GATEWAY_API_KEYS", never: "secretpart"},
		{name: "URL password not printed", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-aaaaaaaaaaaaaaaa", "OPENROUTER_BASE_URL=https://user:hunter2pass@up.example/v1?x=1"}, want: "OPENROUTER_BASE_URL", never: "hunter2pass"},
		{name: "URL password with a # not printed", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-aaaaaaaaaaaaaaaa", "OPENROUTER_BASE_URL=https://:#hunter2pass@up.example/v1"}, want: "OPENROUTER_BASE_URL", never: "hunter2pass"},
		{name: "unparsable URL password not printed", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-aaaaaaaaaaaaaaaa", "OPENROUTER_BASE_URL=https://user:hunter2pass@up.example:badport/v1"}, want: "OPENROUTER_BASE_URL", never: "hunter2pass"},
		{name: "bad CORS origin", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-5d8e1f3a9c7b2046e81d5a3f9b0c4e72", "CORS_ORIGINS=app.example.com"}, want: "CORS_ORIGINS"},
		{name: "bad allowed host", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-aaaaaaaaaaaaaaaa", "ALLOWED_HOSTS=http://x/"}, want: "ALLOWED_HOSTS"},
		{name: "zero write timeout", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-aaaaaaaaaaaaaaaa", "WRITE_TIMEOUT=0s"}, want: "WRITE_TIMEOUT"},
		{name: "admin token is a client token", environ: []string{"OPENROUTER_API_KEY_1=sk-or-v1-aaaaaaaaaaaaaaaa", "GATEWAY_API_KEYS=tok-1-abcdefgh, shared-admin-9876", "ADMIN_TOKEN= shared-admin-9876"}, want: "token 2 of GATEWAY_API_KEYS", never: "shared-admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.environ, nil, true)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			if tc.never != "" && strings.Contains(err.Error(), tc.never) {
				t.Fatalf("error %q quotes %q", err, tc.never)
			}
		})
	}
}

func TestBrowserSettings(t *testing.T) {
	c, err := Load([]string{"OPENROUTER_API_KEY_1=sk-or-v1-5d8e1f3a9c7b2046e81d5a3f9b0c4e72", "CORS_ORIGINS=https://App.example.com/, ,http://localhost:3000",
		"ALLOWED_HOSTS= Keygate.internal ,,"}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.CORSOrigins) != "[https://app.example.com http://localhost:3000]" || fmt.Sprint(c.AllowedHosts) != "[keygate.internal]" || c.WriteTimeout != 60*time.Second {
		t.Fatalf("got origins %q hosts %q write timeout %v", c.CORSOrigins, c.AllowedHosts, c.WriteTimeout)
	}
}

// TestRefusedSettingQuotesNoSecret: a setting refused for its value is
// quoted, but a pool key, client token or admin token pasted into it is
// masked, as written and lower-cased.
func TestRefusedSettingQuotesNoSecret(t *testing.T) {
	key := testKey("pasted")
	tok, admin := "client-token-abcdef0123456789", "admin-token-9876543210fedcba"
	for _, bad := range []string{"PORT=" + key, "KEY_ROTATION=" + key, "LOG_LEVEL=" + tok, "CORS_ORIGINS=" + admin,
		"OPENROUTER_BASE_URL=" + key, "ALLOWED_HOSTS=a/" + key, "RATE_LIMIT_COOLDOWN=" + key} {
		_, err := Load([]string{"OPENROUTER_API_KEY_1=" + key, "GATEWAY_API_KEYS=x-token-0000000000000000," + tok, "ADMIN_TOKEN=" + admin, bad}, nil, true)
		if err == nil {
			t.Fatalf("%s accepted", bad)
		}
		name, _, _ := strings.Cut(bad, "=")
		for _, secretText := range []string{key[len(key)-12:], strings.ToLower(key[len(key)-12:]), tok[len(tok)-12:], admin[len(admin)-12:]} {
			if strings.Contains(err.Error(), secretText) {
				t.Errorf("%s: error %q quotes a secret", name, err)
			}
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
}

// TestRefusedSettingQuotesNoStrayKey: a key pasted into a setting, and
// into no key variable (the pool holds others, or none yet), is masked in
// the refusal too: it is a key all the same.
func TestRefusedSettingQuotesNoStrayKey(t *testing.T) {
	stray := testKey("stray")
	for _, bad := range []string{"PORT=" + stray, "UPSTREAM_TIMEOUT=" + stray, "KEY_ROTATION=" + stray, "LOG_LEVEL= " + stray} {
		for _, pool := range [][]string{{"OPENROUTER_API_KEY_1=" + testKey("pool")}, nil} {
			_, err := Load(append(pool, bad), nil, pool != nil)
			if err == nil {
				t.Fatalf("%s accepted", bad)
			}
			if strings.Contains(err.Error(), stray[len(stray)-12:]) {
				t.Errorf("error %q quotes the key", err)
			}
		}
	}
}

// TestUnapplied: the settings a reload would leave as they were are named,
// tokens included (by name alone); the key pool and derived fields are not
// settings a reload leaves.
func TestUnapplied(t *testing.T) {
	load := func(env ...string) *Config {
		t.Helper()
		c, err := Load(append([]string{"OPENROUTER_API_KEY_1=" + testKey("1")}, env...), nil, true)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tt := range []struct {
		name     string
		was, now []string
		want     []string
	}{
		{"nothing changed", nil, nil, nil},
		{"keys only", nil, []string{"OPENROUTER_API_KEY_2=" + testKey("2")}, nil},
		{"port", nil, []string{"PORT=4001"}, []string{"PORT"}},
		{"same value spelt out", nil, []string{"PORT=4000", "UPSTREAM_TIMEOUT=2m"}, nil},
		{"client token and level", []string{"GATEWAY_API_KEYS=client-token-aaaaaaaa"},
			[]string{"GATEWAY_API_KEYS=client-token-bbbbbbbb", "LOG_LEVEL=debug"}, []string{"GATEWAY_API_KEYS", "LOG_LEVEL"}},
		{"admin token removed", []string{"ADMIN_TOKEN=admin-token-aaaaaaaa"}, nil, []string{"ADMIN_TOKEN"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unapplied(load(tt.was...), load(tt.now...)); !slices.Equal(got, tt.want) {
				t.Fatalf("Unapplied = %v, want %v", got, tt.want)
			}
		})
	}
}
