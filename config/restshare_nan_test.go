package config

import (
	"strings"
	"testing"
)

// TestClientRestShareNaN: CLIENT_REST_SHARE=NaN (strconv reads "NaN",
// "nan") is no share of the pool and is refused like 0 or 2; it used to
// slip past both bounds, which NaN fails alike, and start.
func TestClientRestShareNaN(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "-NaN"} {
		_, err := Load([]string{"OPENROUTER_API_KEY_1=" + testKey("1"), "CLIENT_REST_SHARE=" + v}, nil, true)
		if err == nil || !strings.Contains(err.Error(), "invalid CLIENT_REST_SHARE") {
			t.Errorf("CLIENT_REST_SHARE=%s: err %v, want it refused by name", v, err)
		}
	}
}
