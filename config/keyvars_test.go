package config

import (
	"slices"
	"testing"

	"github.com/keygate/keygate/secret"
)

func TestKeyVarNames(t *testing.T) {
	got := KeyVarNames(
		[]string{"OPENROUTER_API_KEY_2=sk-b", "PORT=1", "OPENROUTER_API_KEYS= ", "OPENROUTER_API_KEY_1=sk-a", "junk"},
		map[string]string{"OPENROUTER_API_KEY_1": "sk-c", "OPENROUTER_API_KEYS": "sk-d", "KEYS_FILE": "/k"},
	)
	want := []string{"OPENROUTER_API_KEYS", "OPENROUTER_API_KEY_1", "OPENROUTER_API_KEY_2"}
	if !slices.Equal(got, want) {
		t.Fatalf("KeyVarNames = %v, want %v", got, want)
	}
	if got := KeyVarNames(nil, nil); len(got) != 0 {
		t.Fatalf("KeyVarNames(nil, nil) = %v", got)
	}
}

func TestLoadKeysFileAndAdminToken(t *testing.T) {
	c, err := Load([]string{"KEYS_FILE=/etc/keygate/keys.env", "ADMIN_TOKEN= adm-1 "}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeysFile != "/etc/keygate/keys.env" || c.AdminToken.IsZero() || !c.AdminToken.Equal(secret.New("adm-1")) {
		t.Fatalf("KeysFile %q, AdminToken %v", c.KeysFile, c.AdminToken)
	}
}

// TestUnreadKeyVars: a variable meant for the pool but not read into it is
// named beside a pool that loaded (it was dropped without a word), and
// nothing else is.
func TestUnreadKeyVars(t *testing.T) {
	k1, k2 := testKey("1"), testKey("2")
	for _, tc := range []struct {
		name string
		vars map[string]string
		want []UnreadKeyVar
	}{
		{"typo beside a numbered key", map[string]string{"OPENROUTER_API_KEY_1": k1, "OPENROUTER_API_KEY2": k2},
			[]UnreadKeyVar{{Name: "OPENROUTER_API_KEY2"}}},
		{"the list beside numbered keys", map[string]string{"OPENROUTER_API_KEY_1": k1, "OPENROUTER_API_KEYS": k2},
			[]UnreadKeyVar{{Name: "OPENROUTER_API_KEYS", Shadowed: true}}},
		{"both, sorted", map[string]string{"OPENROUTER_API_KEY_1": k1, "OPENROUTER_API_KEYS": k2, "OPENROUTER_KEY": k2, "OPENROUTER_API_KEY": k2},
			[]UnreadKeyVar{{Name: "OPENROUTER_API_KEYS", Shadowed: true}, {Name: "OPENROUTER_API_KEY"}, {Name: "OPENROUTER_KEY"}}},
		{"the list alone", map[string]string{"OPENROUTER_API_KEYS": k1 + "," + k2}, nil},
		{"numbered keys alone", map[string]string{"OPENROUTER_API_KEY_1": k1, "OPENROUTER_API_KEY_7": k2}, nil},
		{"blank near-miss", map[string]string{"OPENROUTER_API_KEY_1": k1, "OPENROUTER_API_KEY2": " ", "OPENROUTER_API_KEYS": ""}, nil},
		{"other settings", map[string]string{"OPENROUTER_API_KEY_1": k1, "OPENROUTER_BASE_URL": "http://127.0.0.1:1", "ADMIN_TOKEN": "adm-0123456789abcdef"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(nil, tc.vars, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.UnreadKeyVars, tc.want) {
				t.Fatalf("UnreadKeyVars = %v, want %v", c.UnreadKeyVars, tc.want)
			}
		})
	}
}
