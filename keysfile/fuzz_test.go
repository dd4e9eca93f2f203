package keysfile

import (
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
)

// marker is a key-like value: no refusal may quote it.
const marker = "sk-or-v1-FUZZSECRETFUZZSECRET9999"

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"OPENROUTER_API_KEY_1=" + marker + "\n",
		"# c\n\nexport OPENROUTER_API_KEY_2='" + marker + "'\n",
		"OPENROUTER_API_KEYS=" + marker + ",x\n",
		"OPENROUTER_API_KEY_1 " + marker + "\n",
		"OPENROUTER_API_KEY_1=\"" + marker + "\n",
		"A=1\n" + marker + "\n",
		"OPENROUTER_API_KEY_01=" + marker,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, dups, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), marker[9:]) {
				t.Fatalf("refusal quotes the key: %v", err)
			}
			if got != nil || dups != nil {
				t.Fatalf("refusal with a pool: %v %v", got, dups)
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("accepted a file with no key")
		}
		if !slices.IsSortedFunc(got, func(a, b keyring.Entry) int { return a.ID - b.ID }) {
			t.Fatalf("ids not ordered: %v", ids(got))
		}
		for i, e := range got {
			if e.ID <= 0 || e.Secret.IsZero() {
				t.Fatalf("entry %d: id %d, empty %v", i, e.ID, e.Secret.IsZero())
			}
			for _, o := range got[:i] {
				if o.ID == e.ID || o.Secret.Equal(e.Secret) {
					t.Fatalf("entries %d and %d repeat an id or a key", o.ID, e.ID)
				}
			}
		}
	})
}
