package config

import (
	"strings"
	"testing"
)

// TestKeyWithBlankIsNotCalledPlaceholder: a real key with a blank in it (a
// paste split by a space, or an inline comment that docker run --env-file
// keeps in the value) is refused, as the README says, for the blank: the
// message must not send the user hunting for a placeholder.
func TestKeyWithBlankIsNotCalledPlaceholder(t *testing.T) {
	k := testKey("1")
	for _, v := range []string{k[:30] + " " + k[30:], k + " # my first key", k[:30] + "\t" + k[30:]} {
		_, err := Load([]string{"OPENROUTER_API_KEY_1=" + v}, nil, true)
		if err == nil {
			t.Fatalf("%q: no error", v)
		}
		if msg := err.Error(); strings.Contains(msg, "placeholder") || !strings.Contains(msg, "blank") {
			t.Errorf("%q: error %q should say the key holds a blank, not that it is a placeholder", v, msg)
		}
	}
}
