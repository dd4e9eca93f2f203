package simulator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestGeneration: GET /generation?id= describes an answer to any key of the
// account that made it, streamed or not, and is a 404 to another account's
// keys, as OpenRouter keeps generations per account.
func TestGeneration(t *testing.T) {
	h := startSim(t, Options{Accounts: []Account{
		{ID: "user_A", Balance: 5, Keys: []KeySpec{{Secret: "sk-a1"}, {Secret: "sk-a2"}}},
		{ID: "user_B", Balance: 5, Keys: []KeySpec{{Secret: "sk-b1"}}},
	}})
	plain := h.chat("sk-a1", "openai/gpt-4o-mini", "hello there", false, nil)
	streamed := h.chat("sk-a1", "openai/gpt-4o-mini", "hello there", true, nil)
	for _, r := range []reply{plain, streamed} {
		if r.status != http.StatusOK || r.header.Get("X-Generation-Id") == "" {
			t.Fatalf("answer %d without a generation id: %s", r.status, r.body)
		}
	}
	id := plain.header.Get("X-Generation-Id")
	tests := []struct {
		name, key, query string
		want             int
		streamed         bool
	}{
		{"the key that made it", "sk-a1", "?id=" + id, http.StatusOK, false},
		{"a sibling key", "sk-a2", "?id=" + id, http.StatusOK, false},
		{"a streamed answer", "sk-a2", "?id=" + streamed.header.Get("X-Generation-Id"), http.StatusOK, true},
		{"another account", "sk-b1", "?id=" + id, http.StatusNotFound, false},
		{"an id never given", "sk-a1", "?id=gen-1-x", http.StatusNotFound, false},
		{"an id longer than any", "sk-a1", "?id=gen-" + strings.Repeat("x", 60), http.StatusNotFound, false},
		{"no id", "sk-a1", "", http.StatusBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(http.MethodGet, "/generation"+tt.query, tt.key, "", nil)
			if r.status != tt.want {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want != http.StatusOK {
				decodeError(t, r)
				return
			}
			var doc struct {
				Data map[string]any `json:"data"`
			}
			if err := json.Unmarshal(r.body, &doc); err != nil {
				t.Fatalf("%v in %s", err, r.body)
			}
			d := doc.Data
			if d["model"] != "openai/gpt-4o-mini" || d["streamed"] != tt.streamed || d["total_cost"].(float64) <= 0 ||
				d["total_cost"] != d["usage"] || d["tokens_completion"].(float64) <= 0 || d["is_byok"] != false {
				t.Fatalf("record %s", r.body)
			}
		})
	}
	if r := h.do(http.MethodPost, "/generation?id="+id, "sk-a1", "", nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /generation: %d, want 405", r.status)
	}
}

// TestGenerationsKeepTheLatest: the store holds the latest
// keptGenerations answers; an older one is forgotten (404), not mixed up.
func TestGenerationsKeepTheLatest(t *testing.T) {
	var g generations
	a, b := &account{}, &account{}
	cp := func(i int) *completion {
		c := &completion{model: "m" + strconv.Itoa(i)}
		c.idLen = copy(c.idBuf[:], "gen-"+strconv.Itoa(i))
		return c
	}
	for i := range keptGenerations + 1 {
		acct := a
		if i%2 == 1 {
			acct = b
		}
		g.keep(cp(i), acct, false)
	}
	if _, ok := g.lookup("gen-0", a); ok {
		t.Fatal("the oldest answer is still kept past keptGenerations")
	}
	if r, ok := g.lookup("gen-1", b); !ok || r.model != "m1" {
		t.Fatalf("gen-1: %+v %v", r, ok)
	}
	if _, ok := g.lookup("gen-1", a); ok {
		t.Fatal("gen-1 readable by another account")
	}
	last := "gen-" + strconv.Itoa(keptGenerations)
	if r, ok := g.lookup(last, a); !ok || r.model != "m"+strconv.Itoa(keptGenerations) {
		t.Fatalf("%s: %+v %v", last, r, ok)
	}
}
