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
