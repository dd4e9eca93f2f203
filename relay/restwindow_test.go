package relay_test

import (
	"testing"
	"time"

	"github.com/keygate/keygate/relay"
)

// TestClientRestsOutlastingTheWindowStillCount: the rests one client
// causes count against its share while they last, not only in the window
// they began in. A client whose 429s carried a long Retry-After rested
// half the pool, waited for the next window and rested the other half:
// one client benched the whole pool for a quarter of an hour.
func TestClientRestsOutlastingTheWindowStillCount(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		wait       time.Duration
		want       int // keys in rotation after the client's second round
	}{
		{"rests over, still in the window: the same keys rest again, no others", "30", 45 * time.Second, 2},
		{"rests over by the next window: a new share", "30", time.Minute + time.Second, 2},
		{"rests still in force in the next window: no new share", "900", time.Minute + time.Second, 2},
		{"rests over after the window: a new share", "90", 2 * time.Minute, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rl := answer{429, map[string]string{"Retry-After": tt.retryAfter}, `{"error":{"message":"slow down","code":429}}`}
			e := newEnv(t, envOptions{keys: 4, share: 0.5}, answers(map[int]answer{1: rl, 2: rl, 3: rl, 4: rl}))
			round := func() {
				t.Helper()
				for range 3 {
					c := relay.Call{Client: "attacker"}
					resp, err := e.do(t, nil, &c)
					if err != nil {
						t.Fatal(err)
					}
					readAll(t, resp)
				}
			}
			round()
			if n := e.pool.CountAvailable(e.clock.ns.Load()); n != 2 {
				t.Fatalf("%d keys in rotation after the first round, want 2", n)
			}
			e.clock.Add(tt.wait)
			round()
			if n := e.pool.CountAvailable(e.clock.ns.Load()); n != tt.want {
				t.Errorf("%d keys in rotation after the second round, want %d", n, tt.want)
			}
		})
	}
}
