package keysfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

const (
	k1 = "sk-or-v1-3f9a0c7e5b21d84f6a0e9c3b7d1f2a58"
	k2 = "sk-or-v1-8e2d4b6a0f1c93e7d5b2a8c4f60e1d37"
	k3 = "sk-or-v1-c5a17e3f9b0d28a6e4c1f7b3d9a05e62"
)

func ids(es []keyring.Entry) []int {
	out := make([]int, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		dups    []config.Duplicate
		wantErr error
		errHas  string
	}{
		{name: "numbered", in: "OPENROUTER_API_KEY_1=" + k1 + "\nOPENROUTER_API_KEY_3=" + k3 + "\n", want: []int{1, 3}},
		{name: "comments blanks export quotes", in: "# pool\n\n  \nexport OPENROUTER_API_KEY_2=\"" + k2 + "\"\nOPENROUTER_API_KEY_1='" + k1 + "' # first\n", want: []int{1, 2}},
		{name: "a whole .env", in: "PORT=4000\nKEY_ROTATION=random\nOPENROUTER_API_KEY_5=" + k1 + "\n", want: []int{5}},
		{name: "comma list", in: "OPENROUTER_API_KEYS=" + k1 + "," + k2 + "\n", want: []int{1, 2}},
		{name: "numbered win over the list", in: "OPENROUTER_API_KEYS=" + k1 + "\nOPENROUTER_API_KEY_7=" + k2 + "\n", want: []int{7}},
		{name: "duplicate dropped", in: "OPENROUTER_API_KEY_1=" + k1 + "\nOPENROUTER_API_KEY_2=" + k1 + "\n", want: []int{1}, dups: []config.Duplicate{{ID: 2, SameAs: 1}}},
		{name: "crlf", in: "OPENROUTER_API_KEY_1=" + k1 + "\r\nOPENROUTER_API_KEY_2=" + k2 + "\r\n", want: []int{1, 2}},
		// Notepad and Windows PowerShell's Set-Content -Encoding UTF8
		// start a file with a byte order mark.
		{name: "utf-8 byte order mark", in: "\ufeffOPENROUTER_API_KEY_1=" + k1 + "\r\nOPENROUTER_API_KEY_2=" + k2 + "\r\n", want: []int{1, 2}},
		// Windows PowerShell's > and Out-File write UTF-16.
		{name: "utf-16", in: "\xff\xfeO\x00=\x00", wantErr: ErrSyntax, errHas: "UTF-16"},
		{name: "empty file", in: "", wantErr: ErrNoKeys},
		{name: "comments only", in: "# nothing yet\n\n", wantErr: ErrNoKeys},
		{name: "empty values", in: "OPENROUTER_API_KEY_1=\nOPENROUTER_API_KEY_2=  \n", wantErr: ErrNoKeys},
		// A syntax error names its line by number, never by its text.
		{name: "a line without =", in: "OPENROUTER_API_KEY_1=" + k1 + "\nOPENROUTER_API_KEY_2 " + k2 + "\n", wantErr: ErrSyntax, errHas: "line 2: "},
		{name: "unterminated quote", in: "OPENROUTER_API_KEY_1='" + k1 + "\n", wantErr: ErrSyntax, errHas: "line 1: "},
		{name: "unterminated quote after quoted ones", in: "# pool\nOPENROUTER_API_KEY_1=\"" + k1 + "\"\n\nOPENROUTER_API_KEY_2=\"" + k2 + "\nOPENROUTER_API_KEY_3=" + k3 + "\n", wantErr: ErrSyntax, errHas: "line 4: "},
		{name: "a dash in a name after a multi-line value", in: "NOTE=\"two\nlines\"\r\nOPENROUTER_API_KEY_1=" + k1 + "\r\nOPENROUTER-API-KEY-2=" + k2 + "\r\n", wantErr: ErrSyntax, errHas: "line 4: "},
		{name: "a key pasted alone", in: "PORT=4000\n" + k1 + "\n", wantErr: ErrSyntax, errHas: "line 2: "},
		{name: "json instead", in: `{"keys": ["` + k1 + `"]}`, wantErr: ErrSyntax, errHas: "line 1: "},
		{name: "bad id", in: "OPENROUTER_API_KEY_x=" + k1 + "\n", errHas: "OPENROUTER_API_KEY_x"},
		{name: "zero id", in: "OPENROUTER_API_KEY_0=" + k1 + "\n", errHas: "positive"},
		{name: "the example left unedited", in: "OPENROUTER_API_KEY_1=sk-or-v1-your-key-here\nOPENROUTER_API_KEY_2=" + k2 + "\n", errHas: "OPENROUTER_API_KEY_1 holds a placeholder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dups, err := Parse([]byte(tt.in))
			if tt.wantErr != nil || tt.errHas != "" {
				if err == nil {
					t.Fatalf("Parse = %v, want an error", ids(got))
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want it to name %q", err, tt.errHas)
				}
				for _, k := range []string{k1, k2, k3, k1[len(k1)-12:]} {
					if strings.Contains(err.Error(), k) {
						t.Fatalf("err quotes key text: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Fatalf("ids = %v, want %v", ids(got), tt.want)
			}
			if !slices.Equal(dups, tt.dups) {
				t.Fatalf("dups = %v, want %v", dups, tt.dups)
			}
		})
	}
}

func TestParseSecrets(t *testing.T) {
	got, _, err := Parse([]byte("OPENROUTER_API_KEY_1=  " + k1 + "  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Secret.Equal(secret.New(k1)) {
		t.Fatalf("secret = %v, want %v", got[0].Secret, secret.New(k1))
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "nope.env")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.env")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", MaxSize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big file: err = %v, want ErrTooLarge", err)
	}
	good := filepath.Join(dir, "keys.env")
	writeFile(t, good, "OPENROUTER_API_KEY_2="+k2+"\n")
	f, err := Read(good)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != good || !slices.Equal(ids(f.Entries), []int{2}) || f.Sum == ([32]byte{}) {
		t.Fatalf("Read = %+v", f)
	}
	bad := filepath.Join(dir, "bad.env")
	writeFile(t, bad, "garbage "+k1+"\n")
	_, err = Read(bad)
	if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), k1[9:]) {
		t.Fatalf("bad file: err = %v, want ErrSyntax naming the path and no key", err)
	}
}

func entries(pairs ...any) []keyring.Entry {
	var out []keyring.Entry
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, keyring.Entry{ID: pairs[i].(int), Secret: secret.New(pairs[i+1].(string))})
	}
	return out
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		old, next []keyring.Entry
		want      Change
	}{
		{"same", entries(1, k1, 2, k2), entries(1, k1, 2, k2), Change{Kept: []int{1, 2}}},
		{"one added", entries(1, k1), entries(1, k1, 2, k2), Change{Added: []int{2}, Kept: []int{1}}},
		{"one removed", entries(1, k1, 2, k2), entries(2, k2), Change{Removed: []int{1}, Kept: []int{2}}},
		{"secret rotated", entries(1, k1, 2, k2), entries(1, k1, 2, k3), Change{Added: []int{2}, Removed: []int{2}, Kept: []int{1}}},
		{"from nothing", nil, entries(3, k3, 1, k1), Change{Added: []int{1, 3}}},
		{"all replaced", entries(1, k1), entries(2, k2), Change{Added: []int{2}, Removed: []int{1}}},
		// A key is its secret: one taken out of OPENROUTER_API_KEYS
		// renumbers the keys after it, which are kept.
		{"taken out of a list", entries(1, k1, 2, k2, 3, k3), entries(1, k2, 2, k3),
			Change{Removed: []int{1}, Kept: []int{1, 2}, Renumbered: []Move{{From: 2, To: 1}, {From: 3, To: 2}}}},
		{"moved", entries(1, k1, 3, k3), entries(1, k1, 7, k3), Change{Kept: []int{1, 7}, Renumbered: []Move{{From: 3, To: 7}}}},
		{"swapped", entries(1, k1, 2, k2), entries(1, k2, 2, k1), Change{Kept: []int{1, 2}, Renumbered: []Move{{From: 2, To: 1}, {From: 1, To: 2}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.old, tt.next)
			if !slices.Equal(got.Added, tt.want.Added) || !slices.Equal(got.Removed, tt.want.Removed) || !slices.Equal(got.Kept, tt.want.Kept) ||
				!slices.Equal(got.Renumbered, tt.want.Renumbered) {
				t.Fatalf("Diff = %+v, want %+v", got, tt.want)
			}
			for _, m := range tt.want.Renumbered {
				if w := got.Was(m.To); w != m.From {
					t.Errorf("Was(%d) = %d, want %d", m.To, w, m.From)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
