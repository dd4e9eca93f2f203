package config

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/joho/godotenv"
)

func TestPlaceholder(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"sk-or-v1-PLACEHOLDER-replace-with-your-first-key", true},
		{"sk-or-v1-xxxxxxxxxxxxxxxx", true},
		{"sk-or-v1-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", true},
		{"sk-or-v1-...", true},
		{"sk-or-v1-…", true},
		{"<your key>", true},
		{"your-api-key-here", true},
		{"sk-or-v1-your_key", true},
		{"sk-or-v1-changeme", true},
		{"sk-or-v1-example-key-0001", true},
		{"paste your key", true},
		{"sk-or-v1-0000000000000000000000000000000000000000000000000000000000000000", true},
		{"sk-or-v1-aaaaaaaa1111", true},
		{testKey("1"), false},
		{testKey("2"), false},
		{"sk-proj-Ab3dEf9HiJkLmN0pQrStUvWxYz12345678901234567890aBcDeFgHiJkLmNoP", false},
		{"sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1Ji0Hg9Fe8Dc7Ba6-AA", false},
		{"gsk_4f9Kd83jS0a8f7D6s5A4q3W2e1R0t9Y8u7I6o5P4", false},
		{"sk-or-v1-5hutd0wn0123456789abcdef0123456789abcdef0123456789abcdef", false},
		{"xxxxx-4f9Kd83jS0a8", false}, // five x: a word, not a stand-in
	} {
		if got := placeholder(tc.raw); got != tc.want {
			t.Errorf("placeholder(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestTemplated(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"sk-or-v1-PLACEHOLDER-replace-with-your-first-key", "sk-or-v1-PLACEHOLDER-replace-with-your-second-key", true},
		{"sk-or-v1-mykey-1", "sk-or-v1-mykey-2", true},
		{"sk-or-v1-bench00123456789abcdef", "sk-or-v1-bench10123456789abcdef", true},
		{"my-key-number-one", "my-key-number-twelve", true},
		{testKey("1"), testKey("2"), false},
		{testKey("1"), testKey("1")[:len(testKey("1"))-1] + "z", true}, // one character off: a typo, not a second key
		{"local-a", "local-b", false},                                  // too short to tell
		{"sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1-AA", "sk-ant-api03-Qa1_Ws2-Ed3Rf4Tg5Yh6Uj7Ik8-AA", false},
	} {
		if got := templated(tc.a, tc.b); got != tc.want {
			t.Errorf("templated(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestRandomKeysAreNoPlaceholders: keys drawn at random, in the shapes of
// OpenRouter's (hex) and of other vendors' (base62, base64url), are never
// taken for placeholders, alone or side by side.
func TestRandomKeysAreNoPlaceholders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(prefix, alphabet string, n int) string {
		b := []byte(prefix)
		for range n {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		return string(b)
	}
	const hex = "0123456789abcdef"
	const b62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var keys []string
	for range 3000 {
		keys = append(keys, draw("sk-or-v1-", hex, 64), draw("sk-proj-", b62, 100), draw("sk-ant-api03-", b62+"-_", 93)+"AA")
	}
	var raw []rawKey
	for i, k := range keys {
		if placeholder(k) {
			t.Fatalf("random key %q taken for a placeholder", k)
		}
		if i > 0 && templated(keys[i-1], k) {
			t.Fatalf("random keys %q and %q taken for one template", keys[i-1], k)
		}
		if i < 300 {
			raw = append(raw, rawKey{id: i + 1, name: "K" + strconv.Itoa(i+1), raw: k})
		}
	}
	if err := checkPlaceholders(raw); err != nil {
		t.Fatalf("a pool of 300 random keys: %v", err)
	}
}

// TestEnvExampleRefused: a .env copied from .env.example and left as it
// is stops start-up, naming the three variables to edit.
func TestEnvExampleRefused(t *testing.T) {
	dotenv, err := godotenv.Read("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(nil, dotenv, true)
	var pe *PlaceholderError
	if !errors.As(err, &pe) {
		t.Fatalf("Load(.env.example) = %v, want a PlaceholderError", err)
	}
	want := []string{"OPENROUTER_API_KEY_1", "OPENROUTER_API_KEY_2", "OPENROUTER_API_KEY_3"}
	if !slices.Equal(pe.Vars, want) {
		t.Fatalf("names %v, want %v", pe.Vars, want)
	}
	msg := err.Error()
	if !strings.Contains(msg, "OPENROUTER_API_KEY_1, OPENROUTER_API_KEY_2 and OPENROUTER_API_KEY_3 hold placeholders") ||
		strings.Contains(msg, "\n") || strings.Contains(msg, "PLACEHOLDER-replace") {
		t.Fatalf("message %q", msg)
	}
	if _, err := Load(nil, dotenv, false); err != nil {
		t.Fatalf("the demo (keys not required) refused .env.example: %v", err)
	}
}

func TestLoadPlaceholders(t *testing.T) {
	good1, good2 := testKey("1"), testKey("2")
	for _, tc := range []struct {
		name    string
		environ []string
		want    []string // the variables named; nil: accepted
	}{
		{"real keys", []string{"OPENROUTER_API_KEY_1=" + good1, "OPENROUTER_API_KEY_2=" + good2}, nil},
		{"one x key among real ones", []string{"OPENROUTER_API_KEY_1=" + good1, "OPENROUTER_API_KEY_4=sk-or-v1-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
			[]string{"OPENROUTER_API_KEY_4"}},
		{"numbered template", []string{"OPENROUTER_API_KEY_2=sk-or-v1-my-key-two", "OPENROUTER_API_KEY_10=sk-or-v1-my-key-ten", "OPENROUTER_API_KEY_3=" + good1},
			[]string{"OPENROUTER_API_KEY_2", "OPENROUTER_API_KEY_10"}},
		{"list", []string{"OPENROUTER_API_KEYS=" + good1 + ",sk-or-v1-...,sk-or-v1-..."},
			[]string{"OPENROUTER_API_KEYS (item 2)", "OPENROUTER_API_KEYS (item 3)"}},
		{"duplicated placeholder", []string{"OPENROUTER_API_KEY_1=<your key>", "OPENROUTER_API_KEY_2=<your key>"},
			[]string{"OPENROUTER_API_KEY_1", "OPENROUTER_API_KEY_2"}},
		{"duplicated real key", []string{"OPENROUTER_API_KEY_1=" + good1, "OPENROUTER_API_KEY_2=" + good1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.environ, nil, true)
			var pe *PlaceholderError
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == nil:
			case !errors.As(err, &pe):
				t.Fatalf("err %v, want a PlaceholderError", err)
			case !slices.Equal(pe.Vars, tc.want):
				t.Fatalf("names %v, want %v", pe.Vars, tc.want)
			case strings.Contains(err.Error(), good1[9:]):
				t.Fatalf("message shows a key: %v", err)
			}
		})
	}
}

func TestForeignKeys(t *testing.T) {
	or := testKey("1")
	for _, tc := range []struct {
		name    string
		environ []string
		want    []int
	}{
		{"OpenRouter keys", []string{"OPENROUTER_API_KEY_1=" + or}, nil},
		{"an OpenAI key at OpenRouter", []string{"OPENROUTER_API_KEY_1=" + or, "OPENROUTER_API_KEY_3=sk-proj-Ab3dEf9HiJkLmN0pQrStUvWxYz1234567890"}, []int{3}},
		{"a cut OpenRouter key", []string{"OPENROUTER_API_KEY_2=" + or[:30]}, []int{2}},
		{"OpenRouter's host, another path", []string{"OPENROUTER_BASE_URL=https://openrouter.ai/api/v2", "OPENROUTER_API_KEY_1=gsk_4f9Kd83jS0a8f7D6s5A4q3W2e1R0t9Y8"}, []int{1}},
		{"another upstream", []string{"OPENROUTER_BASE_URL=https://api.openai.com/v1", "OPENROUTER_API_KEY_1=sk-proj-Ab3dEf9HiJkLmN0pQrStUvWxYz1234567890"}, nil},
		{"a later OpenRouter key version", []string{"OPENROUTER_API_KEY_1=sk-or-v2-" + strings.Repeat("aZ09", 10)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.environ, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.ForeignKeys, tc.want) {
				t.Fatalf("ForeignKeys %v, want %v", c.ForeignKeys, tc.want)
			}
		})
	}
}

func TestJoinNames(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""}, {[]string{"A"}, "A"}, {[]string{"A", "B"}, "A and B"}, {[]string{"A", "B", "C"}, "A, B and C"},
	} {
		if got := joinNames(tc.in); got != tc.want {
			t.Errorf("joinNames(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPlaceholdersOfVars: a KEYS_FILE's variables are checked as Load
// checks the environment.
func TestPlaceholdersOfVars(t *testing.T) {
	var pe *PlaceholderError
	if err := Placeholders(map[string]string{"OPENROUTER_API_KEY_1": testKey("1"), "OPENROUTER_API_KEY_2": "sk-or-v1-..."}); !errors.As(err, &pe) ||
		!slices.Equal(pe.Vars, []string{"OPENROUTER_API_KEY_2"}) {
		t.Fatalf("err %v", err)
	}
	if err := Placeholders(map[string]string{"OPENROUTER_API_KEY_1": testKey("1")}); err != nil {
		t.Fatalf("real key refused: %v", err)
	}
	if err := Placeholders(map[string]string{"OPENROUTER_API_KEY_X": "sk-or-v1-..."}); err != nil {
		t.Fatalf("a bad name is PoolFrom's to report: %v", err)
	}
}

// TestOffAPIPath: a base URL on OpenRouter's host but off its API (the
// host alone, /v1, a route copied with it) is named for start-up to warn
// about; OpenRouter's API versions and other upstreams are not.
func TestOffAPIPath(t *testing.T) {
	for _, tc := range []struct {
		base, want string
	}{
		{"https://openrouter.ai/api/v1", ""},
		{"https://openrouter.ai/api/v1/", ""},
		{"https://openrouter.ai/api/v2", ""},
		{"https://openrouter.ai", "/"},
		{"https://openrouter.ai/", "/"},
		{"https://openrouter.ai/v1", "/v1"},
		{"https://openrouter.ai/api", "/api"},
		{"https://OpenRouter.ai/api/v1/chat/completions", "/api/v1/chat/completions"},
		{"https://api.openai.com/v1", ""},
		{"http://127.0.0.1:8080", ""},
	} {
		t.Run(tc.base, func(t *testing.T) {
			c, err := Load([]string{"OPENROUTER_BASE_URL=" + tc.base, "OPENROUTER_API_KEY_1=" + testKey("1")}, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if c.OffAPIPath != tc.want {
				t.Fatalf("OffAPIPath %q, want %q", c.OffAPIPath, tc.want)
			}
		})
	}
}

// TestShortKeys: a key shorter than ShortKey (a local server's "EMPTY")
// is named, so that start-up warns that answers holding the word reach
// clients masked.
func TestShortKeys(t *testing.T) {
	local := "OPENROUTER_BASE_URL=http://127.0.0.1:8000/v1"
	for _, tc := range []struct {
		name    string
		environ []string
		want    []int
	}{
		{"OpenRouter keys", []string{"OPENROUTER_API_KEY_1=" + testKey("1")}, nil},
		{"vLLM's EMPTY", []string{local, "OPENROUTER_API_KEY_1=EMPTY", "OPENROUTER_API_KEY_2=" + testKey("2")}, []int{1}},
		{"in a list", []string{local, "OPENROUTER_API_KEYS=" + testKey("1") + ",ollama"}, []int{2}},
		{"15 characters", []string{local, "OPENROUTER_API_KEY_1=abcdefghijklmno"}, []int{1}},
		{"16 characters", []string{local, "OPENROUTER_API_KEY_1=abcdefghijklmnop"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.environ, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.ShortKeys, tc.want) {
				t.Fatalf("ShortKeys %v, want %v", c.ShortKeys, tc.want)
			}
		})
	}
}
