package simulator

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	gwfault "github.com/keygate/keygate/fault"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	keys := DemoKeys()
	shape := regexp.MustCompile(`^sk-or-v1-[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for _, k := range keys {
		if !shape.MatchString(k) || seen[k] {
			t.Errorf("demo key %q: bad shape or repeated", k)
		}
		seen[k] = true
	}
	if len(keys) != 4 || DemoKeys()[0] != keys[0] {
		t.Fatalf("DemoKeys not 4 stable keys")
	}
	opts := DemoOptions()
	if opts.Latency <= 0 || opts.ChunkDelay <= 0 {
		t.Errorf("demo should be slow enough to watch: %+v", opts)
	}
	opts.Latency, opts.LatencySpread, opts.ChunkDelay = 0, 0, 0
	opts.Now = func() time.Time { return fixedNow }
	h := startSim(t, opts)
	small := `{"model":"openai/gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	free := chatBody("qwen/qwen3-coder:free", "hi", false)
	paid := chatBody("openai/gpt-4o", "hi", false)
	nine := []int{200, 200, 200, 200, 200, 200, 200, 200, 200}
	// Every refusal is judged by keygate's fault table (package fault,
	// here gwfault: the simulator has a type fault) as the demo means it:
	// key 1's 429 and key 2's 401 rest the key, key 3's 402 is the
	// request's (a smaller one fits its cap), the free quota is the
	// account's; none is the model provider's.
	type judged struct {
		scope  gwfault.Scope
		reason gwfault.Reason
		rest   time.Duration // from the answer's hint; 0 for none
	}
	tests := []struct {
		name, key, body string
		want            []int
		source          string // limit_source of the 402/429
		judged          judged // of the 402/429
	}{
		{"key 1 is rate-limited at its first request", keys[0], paid, []int{429}, "", judged{gwfault.Key, gwfault.RateLimit, 30 * time.Second}},
		{"key 1 pays", keys[0], paid, nine, "", judged{}},
		{"key 1 is rate-limited again at its 11th", keys[0], paid, []int{429}, "", judged{gwfault.Key, gwfault.RateLimit, 30 * time.Second}},
		{"key 2 is revoked", keys[1], paid, []int{401, 401}, "", judged{gwfault.Key, gwfault.Auth, 0}},
		{"key 3 cannot afford the default max output", keys[2], chatBody("openai/gpt-4o-mini", "hi", false), []int{402}, "openrouter_key_limit", judged{gwfault.Request, gwfault.NoReason, 0}},
		{"key 3 can afford a small request", keys[2], small, []int{200}, "", judged{}},
		{"account B has 5 free requests left", keys[3], free, []int{200, 200, 200, 200, 200, 429}, "openrouter_free_tier_daily", judged{gwfault.Account, gwfault.FreeQuota, 18*time.Hour + 53*time.Minute + 52*time.Second + 500*time.Millisecond}},
		{"shared by key 3", keys[2], free, []int{429}, "openrouter_free_tier_daily", judged{gwfault.Account, gwfault.FreeQuota, 18*time.Hour + 53*time.Minute + 52*time.Second + 500*time.Millisecond}},
		{"account A has its own", keys[0], free, []int{200}, "", judged{}},
	}
	for _, tt := range tests {
		for n, w := range tt.want {
			r := h.do("POST", "/chat/completions", tt.key, tt.body, nil)
			if r.status != w {
				t.Fatalf("%s: request %d: status %d, want %d: %s", tt.name, n, r.status, w, r.body)
			}
			if w == 200 {
				continue
			}
			v := gwfault.Classify(r.status, r.header, r.body, fixedNow)
			var rest time.Duration
			if !v.Until.IsZero() {
				rest = v.Until.Sub(fixedNow)
			}
			if got := (judged{v.Scope, v.Reason, rest}); got != tt.judged {
				t.Errorf("%s: request %d: keygate judges %v/%v rest %v, want %v/%v rest %v: %v %s",
					tt.name, n, got.scope, got.reason, got.rest, tt.judged.scope, tt.judged.reason, tt.judged.rest, r.header, r.body)
			}
			if w == 402 || w == 429 {
				var e struct {
					Error struct {
						Metadata struct {
							LimitSource string `json:"limit_source"`
						} `json:"metadata"`
					} `json:"error"`
				}
				if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Metadata.LimitSource != tt.source {
					t.Errorf("%s: limit_source %q, want %q: %s", tt.name, e.Error.Metadata.LimitSource, tt.source, r.body)
				}
			}
		}
	}
	if ki, ok := h.s.KeyInfo(keys[2]); !ok || ki.Account != DemoAccountB || ki.LimitRemaining == nil || *ki.LimitRemaining >= 0.005 {
		t.Errorf("key 3 after a paid answer: %+v", ki)
	}
}
