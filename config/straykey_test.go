package config

import (
	"strings"
	"testing"
)

// TestRefusedSettingQuotesNoKeyInside (helper-77): a key in no key
// variable (the pool comes from KEYS_FILE, which Load does not read) that
// stands inside a refused value, not at its start (a base URL's query, a
// pasted "Bearer sk-…"), is masked too.
func TestRefusedSettingQuotesNoKeyInside(t *testing.T) {
	stray := testKey("inside")
	for _, bad := range []string{
		"OPENROUTER_BASE_URL=https://openrouter.ai/api/v1?key=" + stray,
		"OPENROUTER_BASE_URL=https://openrouter.ai/api/v1#" + stray,
		"KEY_ROTATION=Bearer " + stray,
		"LOG_FORMAT=Authorization: Bearer " + stray,
	} {
		_, err := Load([]string{"KEYS_FILE=/run/secrets/keys.env", bad}, nil, false)
		if err == nil {
			t.Fatalf("%s accepted", bad)
		}
		for _, s := range []string{stray[20:32], strings.ToUpper(stray[20:32])} {
			if strings.Contains(err.Error(), s) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(s)) {
				t.Errorf("error %q quotes the key", err)
			}
		}
	}
}
