package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A reload that puts another key with the same mask under an id (the same
// last four, or any short key, masked as its prefix alone): a button or
// script that names the key it saw must not act on the new one. The
// fingerprint tells them apart; the mask alone is refused for that id.
func TestReloadUnderTheSameMask(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // the key under #1 before and after the reload
	}{
		{"the same last four",
			"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",
			"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"},
		{"short keys", "sk-or-v1-short-one", "sk-or-v1-short-two"},
	}
	const other = "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"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t)
			path := filepath.Join(t.TempDir(), "keys.env")
			write := func(key string) {
				t.Helper()
				if err := os.WriteFile(path, []byte("OPENROUTER_API_KEYS="+key+","+other+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(tt.old)
			app, _ := newLiveApp(t, up.URL, nil, Options{}, "KEYS_FILE="+path)
			before := names(t, app.Handler)
			write(tt.new)
			if res, err := app.Live.Reload(context.Background()); err != nil || res.Refused != "" {
				t.Fatalf("reload: %+v, %v", res, err)
			}
			after := names(t, app.Handler)
			if before[1].Masked != after[1].Masked || before[1].Fingerprint == after[1].Fingerprint {
				t.Fatalf("key #1 before %+v, after %+v: want the same mask, another fingerprint", before[1], after[1])
			}
			calls := []struct {
				what, id, key string
				want          int
				wantBody      string
			}{
				{"the mask drawn before", "1", before[1].Masked, http.StatusConflict, "name it by its fingerprint"},
				{"the fingerprint drawn before", "1", before[1].Fingerprint, http.StatusConflict, "not the key with fingerprint " + before[1].Fingerprint},
				{"the fingerprint shown now", "1", after[1].Fingerprint, http.StatusOK, `"disabled":true`},
				{"the other key's mask", "2", after[2].Masked, http.StatusOK, `"disabled":true`},
			}
			for _, c := range calls {
				r := localRequest(http.MethodPost, "/admin/keys/"+c.id+"/disable?key="+url.QueryEscape(c.key), "")
				r.Header.Set("Authorization", "Bearer admin-token-for-tests")
				rec := httptest.NewRecorder()
				app.Handler.ServeHTTP(rec, r)
				body := rec.Body.String()
				if rec.Code != c.want || !strings.Contains(body, c.wantBody) {
					t.Errorf("disable #%s by %s: %d %s; want %d with %q", c.id, c.what, rec.Code, body, c.want, c.wantBody)
				}
				if c.want == http.StatusConflict && strings.Contains(body, after[1].Fingerprint) {
					t.Errorf("the refusal names the new key's fingerprint: %s", body)
				}
			}
			if k := getKeys(t, app.Handler).Keys; !k[0].Disabled || !k[1].Disabled {
				t.Fatalf("keys after the calls: %+v", k)
			}
		})
	}
}

// keyName is a key as /keys and /status.json name it.
type keyName struct {
	ID          int    `json:"id"`
	Masked      string `json:"masked"`
	Fingerprint string `json:"fingerprint"`
}

// names reads the keys' names from /keys, and checks that /status.json
// (what the page's buttons send) names them the same.
func names(t *testing.T, h http.Handler) map[int]keyName {
	t.Helper()
	read := func(path string) []keyName {
		r := localRequest(http.MethodGet, path, "")
		r.Header.Set("Authorization", "Bearer admin-token-for-tests")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var v struct{ Keys []keyName }
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s: %v", path, rec.Code, rec.Body, err)
		}
		return v.Keys
	}
	keys, page := read("/keys"), read("/status.json")
	out := map[int]keyName{}
	for i, k := range keys {
		if i >= len(page) || page[i] != k || !strings.HasPrefix(k.Fingerprint, "fp-") {
			t.Fatalf("/keys %+v, /status.json %+v", keys, page)
		}
		out[k.ID] = k
	}
	return out
}
