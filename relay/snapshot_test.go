package relay

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

func snapPool(t *testing.T, ids ...int) (*keyring.Pool, *breaker.Set) {
	t.Helper()
	var es []keyring.Entry
	for _, id := range ids {
		es = append(es, keyring.Entry{ID: id, Secret: secret.New("sk-or-v1-snapshot-test-key-000000000" + string(rune('0'+id)))})
	}
	p, err := keyring.New(es, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, breaker.NewSet(p, breaker.Settings{})
}

// TestSnapshots: a call stays on the snapshot its first lease (or its first
// Do) came from; calls begun after a Swap use the new pool; a pinned
// snapshot keeps its pool.
func TestSnapshots(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	poolA, setA := snapPool(t, 1)
	r := New(poolA, setA, Options{Transport: tr})
	pinned := r.Snapshot()
	lease, err := r.Acquire(keyring.RoundRobin{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	poolB, setB := snapPool(t, 2)
	if old := r.Swap(poolB, setB, nil); old != pinned {
		t.Fatal("Swap did not return the snapshot it replaced")
	}
	if r.Pool() != poolB || pinned.Pool() != poolA || r.Breakers() != setB {
		t.Fatal("Pool/Breakers do not follow the swap, or a pinned snapshot moved")
	}
	send := func(c *Call) {
		req, _ := http.NewRequest(http.MethodPost, up.URL, strings.NewReader(""))
		resp, err := r.Do(req, nil, c)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Keygate-Key"); got != c.Key.Label {
			t.Errorf("X-Keygate-Key %q for key %d", got, c.Key.ID)
		}
	}
	old := &Call{Strategy: keyring.RoundRobin{}, First: lease}
	send(old)
	fresh := &Call{Strategy: keyring.RoundRobin{}}
	send(fresh)
	if old.Key.ID != 1 || fresh.Key.ID != 2 {
		t.Fatalf("calls went out on keys %d and %d, want 1 (its lease's snapshot) and 2", old.Key.ID, fresh.Key.ID)
	}
	if n := poolA.Ledger().InFlight(0) + poolB.Ledger().InFlight(0); n != 0 {
		t.Errorf("%d calls in flight after both ended", n)
	}
	if poolA.Ledger().Used(0) != 1 || poolB.Ledger().Used(0) != 1 {
		t.Errorf("uses: old pool %d, new pool %d; want 1 each", poolA.Ledger().Used(0), poolB.Ledger().Used(0))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Errorf("upstream saw %d calls, want 2 on two keys", len(seen))
	}
}
