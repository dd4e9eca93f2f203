package gateway

import (
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

func TestKeySourceRestSeconds(t *testing.T) {
	pool, err := keyring.New([]keyring.Entry{
		{ID: 1, Secret: secret.New("sk-or-v1-aaaaaaaaaaaa1111")},
		{ID: 4, Secret: secret.New("sk-or-v1-bbbbbbbbbbbb2222")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	src := NewKeySource(pool, breaker.NewSet(pool, breaker.Settings{Now: func() time.Time { return now }}))
	rest := func(id int, d time.Duration) {
		pool.Ledger().ExtendRest(pool.ByID(id).Slot(), now.Add(d).UnixNano())
	}
	rest(4, 90*time.Second+500*time.Millisecond)
	tests := []struct {
		name string
		id   int
		want float64
	}{
		{"in rotation", 1, 0},
		{"resting", 4, 90.5},
		{"not in the pool", 9, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := src.KeyRestSeconds(tt.id); got != tt.want {
				t.Errorf("KeyRestSeconds(%d) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
	now = now.Add(2 * time.Minute) // the rest is over
	if got := src.KeyRestSeconds(4); got != 0 {
		t.Errorf("after the rest: KeyRestSeconds = %v, want 0", got)
	}
}
