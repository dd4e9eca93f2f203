package keysfile

import (
	"slices"
	"testing"
)

func TestRepeatedNames(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		want       []string
	}{
		{"none", "A=1\nB=2\n", nil},
		{"a key line pasted without renumbering", "OPENROUTER_API_KEY_1=k1\nOPENROUTER_API_KEY_2=k2\nOPENROUTER_API_KEY_2=k3\n", []string{"OPENROUTER_API_KEY_2"}},
		{"three times, told once", "A=1\nA=2\nA=3\n", []string{"A"}},
		{"export, blanks, colon", "export A=1\n  A = 2\nB: 1\nB=2\n", []string{"A", "B"}},
		{"commented out is no setting", "A=1\n# A=2\n", nil},
		{"inside a value over lines", "A=\"first\nA=not a setting\n\"\nB='x\nA=also not\n'\n", nil},
		{"escaped quote keeps the value open", "A=\"one \\\"\nA=inside\"\nA=2\n", []string{"A"}},
		{"byte order mark", "\ufeffA=1\nA=2\n", []string{"A"}},
		{"crlf", "A=1\r\nA=2\r\n", []string{"A"}},
		{"second first, order of second setting", "B=1\nA=1\nA=2\nB=2\n", []string{"A", "B"}},
		// godotenv (v1.5) strips "export" before any blank, a tab too.
		{"export and a tab", "export\tOPENROUTER_API_KEY_1=k1\nexport\tOPENROUTER_API_KEY_1=k2\n", []string{"OPENROUTER_API_KEY_1"}},
		// godotenv takes a quote right after a backslash for escaped in
		// a single-quoted value too, and in a double-quoted one after
		// "\\" as well: the value goes on over the next lines.
		{"single-quoted value goes on past \\'", "B='it\\'s\nA=inside\n'\nA=1\n", nil},
		{"double-quoted value goes on past \\\\\"", "B=\"C:\\\\\"\nA=inside\n\"\nA=1\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vars, err := ParseEnv([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := RepeatedNames([]byte(tt.file), vars); !slices.Equal(got, tt.want) {
				t.Errorf("RepeatedNames = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzRepeatedNames: any file godotenv reads gives names it read, each
// once, and never panics.
func FuzzRepeatedNames(f *testing.F) {
	for _, s := range []string{"A=1\nA=2\n", "A=\"x\nA=y\"\n", "export A=1\n#A=2\n", "\ufeffA:1\r\nA: 2", "A='\\'\nA=1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseEnv(data)
		if err != nil {
			return
		}
		got := RepeatedNames(data, vars)
		for i, n := range got {
			if _, ok := vars[n]; !ok {
				t.Fatalf("%q is not a variable of the file", n)
			}
			if slices.Contains(got[:i], n) {
				t.Fatalf("%q told twice", n)
			}
		}
	})
}
