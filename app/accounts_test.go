package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReloadDropsAccountSeries: a reload that removes every key of an
// account drops the account's keygate_account_free_requests_remaining; an
// account a key of the new pool still has keeps its series.
func TestReloadDropsAccountSeries(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each key is an account of its own, named by its last 4.
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, _ = io.WriteString(w, `{"data":{"limit":null,"usage":0,"creator_user_id":"user_`+key[len(key)-4:]+
			`","free_model_daily_requests":{"used":10,"limit":50,"remaining":40}}}`)
	}))
	defer up.Close()
	a, _ := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{})
	for id := 1; id <= 3; id++ {
		if _, err := a.Live.Check(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	account := func(id int) string { return a.Relay.Breakers().Account(a.Relay.Pool().ByID(id)) }
	acct1, acct2, acct3 := account(1), account(2), account(3)
	for _, step := range []struct {
		ids  []int
		want []string // the accounts with a series
	}{
		{[]int{1, 2, 3}, []string{acct1, acct2, acct3}}, // nothing changes
		{[]int{2, 3}, []string{acct2, acct3}},
		{[]int{3}, []string{acct3}},
	} {
		if res := a.Live.Apply(entries(step.ids...), nil, "admin"); res.Refused != "" {
			t.Fatalf("reload to %v refused: %s", step.ids, res.Refused)
		}
		got := scrape(t, a, "keygate_account_free_requests_remaining")
		if len(got) != len(step.want) {
			t.Errorf("after the reload to %v: %d account series, want %d: %v", step.ids, len(got), len(step.want), got)
		}
		for _, acct := range step.want {
			if !strings.Contains(strings.Join(got, "\n"), `account="`+acct+`"`) {
				t.Errorf("after the reload to %v account %s, still in the pool, has no series: %v", step.ids, acct, got)
			}
		}
	}
}
