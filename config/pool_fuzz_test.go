package config

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// fuzzVars reads NAME=VALUE lines into a variable map, the later line
// winning. A name "#N" is short for OPENROUTER_API_KEY_N and "*" for
// OPENROUTER_API_KEYS, so that the fuzzer reaches the key variables often.
func fuzzVars(env string) map[string]string {
	vars := map[string]string{}
	for line := range strings.SplitSeq(env, "\n") {
		name, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch {
		case name == "*":
			name = keyListVar
		case strings.HasPrefix(name, "#"):
			name = keyVarPrefix + name[1:]
		}
		vars[name] = v
	}
	return vars
}

var canonicalID = regexp.MustCompile(`^[1-9][0-9]*$`)

// poolSource is one key variable that should reach the pool.
type poolSource struct {
	id    int
	value string
	name  string // as an error names it
}

// poolSources lists, independently of poolFrom, the keys vars gives: the
// numbered variables with a non-blank value or, when there are none, the
// non-blank items of the list, numbered from 1 by position. bad names a
// numbered variable whose suffix is no positive decimal number.
func poolSources(vars map[string]string) (src []poolSource, bad string) {
	for name, v := range vars {
		num, ok := strings.CutPrefix(name, keyVarPrefix)
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		id, err := strconv.ParseInt(num, 10, 0)
		if !canonicalID.MatchString(num) || err != nil {
			bad = name
			continue
		}
		src = append(src, poolSource{int(id), v, name})
	}
	if len(src) > 0 || bad != "" {
		return src, bad
	}
	for i, v := range strings.Split(vars[keyListVar], ",") {
		if strings.TrimSpace(v) != "" {
			src = append(src, poolSource{i + 1, v, keyListVar + " (item " + strconv.Itoa(i+1) + ")"})
		}
	}
	return src, ""
}

// unprintable is the first source by id whose key, trimmed, holds a
// control character or a blank, which no call could send; nil when none.
func unprintable(src []poolSource) *poolSource {
	var first *poolSource
	for i, s := range src {
		for _, c := range []byte(strings.TrimSpace(s.value)) {
			if c <= ' ' || c == 0x7f {
				if first == nil || s.id < first.id {
					first = &src[i]
				}
				break
			}
		}
	}
	return first
}

// FuzzPoolFrom checks the key pool parser on any set of variables.
// Properties:
//
//   - poolFrom never panics, and fails exactly when a numbered variable
//     with a value has a name not ending in a positive decimal number (the
//     error names the prefix), or else when a key holds a control
//     character or blank inside (the error names the first such by id);
//   - an accepted pool is ordered by id, its ids are positive and unique,
//     its keys non-empty and pairwise different, and keyring.New accepts it;
//   - every key given is in the pool exactly once, under the lowest id it
//     was given with; each other id it was given with is reported as a
//     Duplicate of that id, and nothing else is;
//   - Load, given the same variables, never panics and, when it succeeds,
//     has the same pool.
func FuzzPoolFrom(f *testing.F) {
	for _, s := range []string{
		"#1=sk-or-v1-aaaaaaaaaaaaaaaa1111\n#2=sk-or-v1-bbbbbbbbbbbbbbbb2222",
		"#7=k7\n#2=k2\n#3= \n#4=",
		"*=a, b,,c , a,\t,b",
		"*=x\n#5=y",
		"#1=same\n#3=same\n#2=other\n#9= same\t",
		"#0=zero",
		"#01=leading",
		"#+1=plus",
		"#-1=minus",
		"#1_000=under",
		"#99999999999999999999=huge",
		"#9223372036854775807=max",
		"#x=\n#1=ok",
		"OPENROUTER_API_KEY_=empty",
		"#١=arabic digit",
		"#1=\u00a0\u2003\n*=k",
		"#1=a\u00a0\n#2=a",
		"PORT=abc\n#1=k",
		"OPENROUTER_API_KEYS=,,,\nOPENROUTER_API_KEY_=",
		"*=0 00",
		"#3=a\tb\n#2=c\x7fd\n#1=ok",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, env string) {
		vars := fuzzVars(env)
		keys, dups, err := poolFrom(vars)
		sources, bad := poolSources(vars)
		blank := unprintable(sources)
		if err != nil {
			if bad == "" && blank == nil {
				t.Fatalf("poolFrom(%q) failed though every key name and key is valid: %v", vars, err)
			}
			want := keyVarPrefix
			if bad == "" {
				want = "invalid " + blank.name + ":"
			}
			if keys != nil || dups != nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("poolFrom(%q) = %v, %v, %v; want an error naming %q", vars, keys, dups, err, want)
			}
			return
		}
		if bad != "" {
			t.Fatalf("poolFrom(%q) accepted the variable %q", vars, bad)
		}
		if blank != nil {
			t.Fatalf("poolFrom(%q) accepted %s, whose key holds a control character or blank", vars, blank.name)
		}

		// Keys are compared by digest through maps, not pairwise: a large
		// input (thousands of keys) would otherwise stall the fuzzer.
		kept := map[int]secret.Key{}
		holder := map[[32]byte]int{} // digest → the pool id holding it
		for i, k := range keys {
			if k.ID <= 0 || k.Secret.IsZero() {
				t.Fatalf("pool entry %d: id %d, zero key %v", i, k.ID, k.Secret.IsZero())
			}
			if i > 0 && k.ID <= keys[i-1].ID {
				t.Fatalf("pool ids not ascending and unique: %d after %d", k.ID, keys[i-1].ID)
			}
			if o, ok := holder[k.Secret.Digest()]; ok {
				t.Fatalf("ids %d and %d hold the same key", o, k.ID)
			}
			holder[k.Secret.Digest()] = k.ID
			kept[k.ID] = k.Secret
		}
		if len(keys) > 0 {
			if _, err := keyring.New(keys, nil); err != nil {
				t.Fatalf("keyring.New refused the pool: %v", err)
			}
		}

		dupOf := map[int]int{}
		for _, d := range dups {
			if _, twice := dupOf[d.ID]; twice {
				t.Fatalf("id %d reported twice as a duplicate: %v", d.ID, dups)
			}
			dupOf[d.ID] = d.SameAs
		}
		if len(keys)+len(dups) != len(sources) {
			t.Fatalf("%d keys given; pool has %d and %d duplicates", len(sources), len(keys), len(dups))
		}
		lowestOf := map[[32]byte]int{} // digest → the lowest id given with it
		for _, s := range sources {
			d := secret.New(s.value).Digest()
			if id, ok := lowestOf[d]; !ok || s.id < id {
				lowestOf[d] = s.id
			}
		}
		for _, s := range sources {
			k := secret.New(s.value)
			lowest := lowestOf[k.Digest()]
			if lowest == s.id {
				if got, ok := kept[s.id]; !ok || !got.Equal(k) {
					t.Fatalf("id %d (the lowest with its key) is not in the pool with its key", s.id)
				}
				continue
			}
			if _, ok := kept[s.id]; ok {
				t.Fatalf("id %d repeats the key of id %d but is in the pool", s.id, lowest)
			}
			if same, ok := dupOf[s.id]; !ok || same != lowest {
				t.Fatalf("id %d repeats the key of id %d; reported as %v (%v)", s.id, lowest, same, ok)
			}
		}

		environ := make([]string, 0, len(vars))
		for name, v := range vars {
			if !strings.Contains(name, "=") {
				environ = append(environ, name+"="+v)
			}
		}
		c, err := Load(environ, nil, false)
		if err != nil {
			return
		}
		if len(c.Keys) != len(keys) || len(c.Duplicates) != len(dups) {
			t.Fatalf("Load has %d keys, %d duplicates; poolFrom %d, %d", len(c.Keys), len(c.Duplicates), len(keys), len(dups))
		}
		for i := range keys {
			if c.Keys[i].ID != keys[i].ID || !c.Keys[i].Secret.Equal(keys[i].Secret) {
				t.Fatalf("Load's pool differs at %d", i)
			}
		}

		// For real use, the same pool is accepted, or refused as empty, or
		// as holding placeholders, named by variables that hold a key.
		forReal, err := Load(environ, nil, true)
		var pe *PlaceholderError
		switch {
		case err == nil:
			if len(forReal.Keys) != len(keys) {
				t.Fatalf("for real use %d keys, else %d", len(forReal.Keys), len(keys))
			}
		case errors.Is(err, ErrNoKeys):
			if len(keys) != 0 {
				t.Fatalf("ErrNoKeys with %d keys", len(keys))
			}
		case errors.As(err, &pe):
			if len(pe.Vars) == 0 || strings.Contains(err.Error(), "\n") {
				t.Fatalf("placeholder error %q", err)
			}
			for _, v := range pe.Vars {
				name, _, _ := strings.Cut(v, " ")
				if _, ok := vars[name]; !ok {
					t.Fatalf("placeholder error names %s, which is not set", v)
				}
			}
		default:
			t.Fatalf("for real use: %v", err)
		}
	})
}
