package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// TestReloadKeepsInFlight: a call in flight on a kept key counts on it
// after a reload (one that changes nothing, and one that renumbers the
// key), in /keys and keygate_key_in_flight, so least-busy sends new calls
// elsewhere; once it ends, nothing is left in flight.
func TestReloadKeepsInFlight(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{}, "KEY_ROTATION=least-busy")
	release := up.holdKey(1)
	done := make(chan int, 1)
	go func() { done <- chat(t, a.Handler) }() // call A holds key 1 (…b28b)
	<-up.started
	inFlight := func(id int) int64 { return getKeysInFlight(t, a)[id] }
	renumbered := []keyring.Entry{{ID: 1, Secret: secret.New(liveKeys[2])}, {ID: 2, Secret: secret.New(liveKeys[1])}}
	for _, step := range []struct {
		name    string
		entries []keyring.Entry
		busy    int // the id of …b28b after the reload
	}{
		{"no change", entries(1, 2), 1},
		{"renumbered", renumbered, 2},
	} {
		if res := a.Live.Apply(step.entries, nil, "admin"); res.Refused != "" {
			t.Fatalf("%s: refused: %s", step.name, res.Refused)
		}
		if n := inFlight(step.busy); n != 1 {
			t.Errorf("%s: key #%d, carrying call A, shows %d in flight, want 1", step.name, step.busy, n)
		}
		want := `keygate_key_in_flight{key="` + a.Relay.Pool().Keys()[step.busy-1].Label + `"} 1`
		if got := strings.Join(scrape(t, a, "keygate_key_in_flight"), "\n"); !strings.Contains(got, want) {
			t.Errorf("%s: no %s in:\n%s", step.name, want, got)
		}
		// Least-busy sends the next call to the idle key, which answers
		// at once (a call on the held key would not return).
		other := 3 - step.busy
		before := getKeys(t, a.Handler).Keys[other-1].Requests
		if code := chat(t, a.Handler); code != 200 {
			t.Fatalf("%s: call: %d", step.name, code)
		}
		if n := getKeys(t, a.Handler).Keys[other-1].Requests; n != before+1 {
			t.Errorf("%s: idle key #%d made %d calls, want %d", step.name, other, n, before+1)
		}
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("call A: %d", code)
	}
	for id := 1; id <= 2; id++ {
		if n := inFlight(id); n != 0 {
			t.Errorf("key #%d: %d in flight after every call ended", id, n)
		}
	}
}

// getKeysInFlight is /keys' in_flight by key id.
func getKeysInFlight(t *testing.T, a *App) map[int]int64 {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, localRequest(http.MethodGet, "/keys", ""))
	var ans struct {
		Keys []struct {
			ID       int   `json:"id"`
			InFlight int64 `json:"in_flight"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatalf("/keys: %v", err)
	}
	out := map[int]int64{}
	for _, k := range ans.Keys {
		out[k.ID] = k.InFlight
	}
	return out
}
