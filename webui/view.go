package webui

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/secret"
)

// State is what the page says a key is doing.
type State string

// The states of a key on the page. The wiring maps the breaker's states and
// the manual disable onto them: closed is active, open is resting,
// half-open is trial.
const (
	StateActive   State = "active"
	StateResting  State = "resting"
	StateTrial    State = "trial"
	StateDisabled State = "disabled"
)

// Key is one key's row. Masked is a secret.Key so that nothing but its mask
// can reach the page, by construction.
type Key struct {
	ID     int        `json:"id"`
	Masked secret.Key `json:"masked"`
	// Fingerprint names the key to the admin buttons (?key=): unlike the
	// mask, no two keys share it.
	Fingerprint string  `json:"fingerprint"`
	Account     string  `json:"account"` // the short digest, never the id
	State       State   `json:"state"`
	RestReason  string  `json:"rest_reason,omitempty"`
	RestLeft    Seconds `json:"rest_left"`
	// FreeBlockedLeft is how long the key's account may take no
	// free-model call (a free-models-per-min or -per-day 429); 0 when it
	// may. Its paid calls go on, so the state stays what it is.
	FreeBlockedLeft Seconds `json:"free_blocked_left"`
	Disabled        bool    `json:"disabled"`
	// Budget is nil until the key's first budget poll.
	Budget   *admin.Budget `json:"budget"`
	InFlight int64         `json:"in_flight"`
	Calls    uint64        `json:"calls"`
	// Failures counts failed calls by fault class ("key", "account",
	// "request", "upstream", …), as the wiring names them.
	Failures    map[string]uint64 `json:"failures"`
	LatencyMean Seconds           `json:"latency_mean"`
}

// Snapshot is the pool as one replica sees it at one moment.
type Snapshot struct {
	Replica  string `json:"replica"`
	Strategy string `json:"strategy"`
	// RedisUp is nil without REDIS_URL.
	RedisUp *bool     `json:"redis_up"`
	At      time.Time `json:"at"`
	Keys    []Key     `json:"keys"`
}

// Seconds is a duration that marshals as seconds (a JSON number).
type Seconds time.Duration

// MarshalJSON writes the duration in seconds, to the millisecond.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(time.Duration(s).Seconds()*1000) / 1000)
}

// Account is the totals of one account's keys.
type Account struct {
	Account    string `json:"account"`
	Keys       int    `json:"keys"`
	InRotation int    `json:"in_rotation"`
	Calls      uint64 `json:"calls"`
	Failures   uint64 `json:"failures"`
	// FreeRequestsRemaining is the latest figure any of its keys' polls
	// gave (the quota is the account's), 0 while its free-model calls are
	// blocked (the poll's figure is then stale, or the day's, not the
	// minute's); nil while unknown.
	FreeRequestsRemaining *int `json:"free_requests_remaining"`
	checkedAt             time.Time
	freeBlocked           bool
}

// Totals is the whole pool's.
type Totals struct {
	Keys       int    `json:"keys"`
	InRotation int    `json:"in_rotation"`
	Resting    int    `json:"resting"`
	Disabled   int    `json:"disabled"`
	InFlight   int64  `json:"in_flight"`
	Calls      uint64 `json:"calls"`
	Failures   uint64 `json:"failures"`
}

// view is the page's data: the snapshot, its totals, and whether the
// viewer holds the admin token (then the page shows the admin buttons).
type view struct {
	Snapshot
	Accounts      []Account `json:"accounts"`
	Pool          Totals    `json:"pool"`
	Admin         bool      `json:"admin"`
	AdminEnabled  bool      `json:"admin_enabled"`
	TokenRequired bool      `json:"token_required"`
}

func newView(s Snapshot) view {
	v := view{Snapshot: s}
	slices.SortFunc(v.Keys, func(a, b Key) int { return cmp.Compare(a.ID, b.ID) })
	byAccount := map[string]*Account{}
	var order []string
	for i := range v.Keys {
		k := &v.Keys[i]
		if k.Failures == nil {
			k.Failures = map[string]uint64{}
		}
		fails := k.failureSum()
		in := k.State == StateActive || k.State == StateTrial
		v.Pool.Keys++
		v.Pool.InFlight += k.InFlight
		v.Pool.Calls += k.Calls
		v.Pool.Failures += fails
		switch {
		case k.State == StateDisabled:
			v.Pool.Disabled++
		case k.State == StateResting:
			v.Pool.Resting++
		case in:
			v.Pool.InRotation++
		}
		name := k.Account
		if name == "" {
			// Until its account is known a key is an account of its own.
			name = "key #" + strconv.Itoa(k.ID)
		}
		a := byAccount[name]
		if a == nil {
			a = &Account{Account: name}
			byAccount[name] = a
			order = append(order, name)
		}
		a.Keys++
		if in {
			a.InRotation++
		}
		a.Calls += k.Calls
		a.Failures += fails
		if b := k.Budget; b != nil && b.FreeRequestsRemaining != nil && !b.CheckedAt.Before(a.checkedAt) {
			n := *b.FreeRequestsRemaining
			a.FreeRequestsRemaining, a.checkedAt = &n, b.CheckedAt
		}
		a.freeBlocked = a.freeBlocked || k.FreeBlockedLeft > 0
	}
	slices.Sort(order)
	for _, name := range order {
		a := byAccount[name]
		if a.freeBlocked {
			none := 0
			a.FreeRequestsRemaining = &none
		}
		v.Accounts = append(v.Accounts, *a)
	}
	if v.Keys == nil {
		v.Keys = []Key{}
	}
	if v.Accounts == nil {
		v.Accounts = []Account{}
	}
	return v
}

func (k Key) failureSum() uint64 {
	var n uint64
	for _, c := range k.Failures {
		n += c
	}
	return n
}

// FailureList is the failures ordered by class, for the template.
func (k Key) FailureList() []string {
	classes := make([]string, 0, len(k.Failures))
	for c, n := range k.Failures {
		if n > 0 {
			classes = append(classes, c)
		}
	}
	slices.Sort(classes)
	out := make([]string, 0, len(classes))
	for _, c := range classes {
		out = append(out, c+" "+strconv.FormatUint(k.Failures[c], 10))
	}
	return out
}

// The page's formats; app.js formats the same way.

func fmtUSD(p *float64) string {
	if p == nil {
		return "∞"
	}
	return budget.USD(*p)
}

func fmtCount(p *int) string {
	if p == nil {
		return "—"
	}
	return strconv.Itoa(*p)
}

func fmtSeconds(s Seconds) string {
	d := time.Duration(s)
	if d <= 0 {
		return "—"
	}
	d = d.Round(time.Second)
	if d < time.Second {
		d = time.Second
	}
	h, m, sec := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, sec)
	}
	return fmt.Sprintf("%ds", sec)
}

func fmtLatency(s Seconds) string {
	d := time.Duration(s)
	if d <= 0 {
		return "—"
	}
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
