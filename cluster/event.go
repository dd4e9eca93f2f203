// Package cluster shares what one keygate replica learns about its keys with
// the other replicas: rests, account rests, the one trial call of a key back
// from rest, manual disables, budget figures, spend between polls and the
// budget-poll lease. Picks never read through it: each replica keeps its own
// ledger and applies the events that this package delivers. Local is the
// in-process default (one replica, nothing to share); Redis shares through a
// Redis server and degrades to Local's behaviour while the server is away.
package cluster

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/secret"
)

// Kind says what an Event is about.
type Kind string

// The kinds of Event. The strings are what Redis holds, so they never change.
const (
	// KeyRest: Key rests until Until, for Reason (upstream Status).
	KeyRest Kind = "rest"
	// AccountRest: every key of Account rests until Until, for Reason.
	AccountRest Kind = "arest"
	// Disable: Key was taken out of rotation by hand at At.
	Disable Kind = "disable"
	// Enable: Key was brought back by hand at At.
	Enable Kind = "enable"
	// Budget: Key's (and its Account's) budget figures as polled at At,
	// USD what the publisher spent on Key and N the free-model requests
	// it knew used of the Account while the poll was out (which the
	// figures do not hold). Delivered by a re-read, USD is what the fleet
	// spent on Key since the poll was sent.
	Budget Kind = "budget"
	// Spend: USD was spent on Key (of Account) since the last report.
	Spend Kind = "spend"
	// FreeUse: N free-model requests of Account were made on Key since
	// the last report. Pushed only, like Spend, never stored: a replica
	// that missed one reads the quota at its next poll.
	FreeUse Kind = "free"
	// TrialResult: the trial call after Key's rest until Until came back
	// OK (the key is in rotation again: a rest of Key that ends no later
	// than Until is over) or not (a KeyRest follows). A budget poll that
	// shows a resting key has credit again publishes an OK one too.
	TrialResult Kind = "trial"
	// AccountBack: Account's rest that ends no later than Until is over
	// early (a budget poll showed credit).
	AccountBack Kind = "aback"
	// Member: Key belongs to Account, as learned at At (an error body's
	// user_id, or a poll): a replica that has not polled the key (polls
	// off, or before the first) rests it with its account all the same.
	Member Kind = "member"
)

func (k Kind) valid() bool {
	switch k {
	case KeyRest, AccountRest, Disable, Enable, Budget, Spend, FreeUse, TrialResult, AccountBack, Member:
		return true
	}
	return false
}

// KeyRef names a key in shared state without its secret: the key's id and a
// digest of the secret, so that a key whose secret changed under the same id
// starts clean. Build it with RefOf.
type KeyRef string

// RefOf is the KeyRef of key id with secret k: "<id>:" and the first 16 hex
// digits of the secret's SHA-256. The secret itself never reaches Redis.
func RefOf(id int, k secret.Key) KeyRef {
	d := k.Digest()
	return KeyRef(strconv.Itoa(id) + ":" + hex.EncodeToString(d[:8]))
}

// Digest is the part of r that names the secret, whatever the id: a
// reload may renumber a key (one taken out of a list moves the others up),
// and a manual disable follows the key, even one written under its old id.
func (r KeyRef) Digest() string {
	if _, d, ok := strings.Cut(string(r), ":"); ok {
		return d
	}
	return string(r)
}

// Event is one fact a replica learned, published to the others. Which
// fields matter depends on Kind (see the Kind constants); the rest stay zero.
type Event struct {
	Kind    Kind
	Key     KeyRef
	Account string // a digest of the account id, never the id itself
	Until   time.Time
	Reason  string
	Status  int
	OK      bool
	Figures json.RawMessage // Budget: the budget package's own JSON
	At      time.Time       // Budget: when polled; Disable/Enable, Member: when done or learned (Publish fills it in)
	USD     float64
	N       int // FreeUse: the requests; Budget: the free-model requests used while the poll was out
}

// freeQuota is the Reason of an AccountRest that blocks the account's
// free-model calls only (fault.FreeQuota's name, as share publishes free
// blocks): it is kept beside the account's rest, under a key of its own.
const freeQuota = "free_quota"

// wire is an Event as Redis stores and pushes it: times in Unix
// milliseconds, and the publishing replica, so that it skips its own pushes.
type wire struct {
	K      Kind            `json:"k"`
	Key    KeyRef          `json:"key,omitempty"`
	A      string          `json:"a,omitempty"`
	U      int64           `json:"u,omitempty"`
	R      string          `json:"r,omitempty"`
	S      int             `json:"s,omitempty"`
	OK     bool            `json:"ok,omitempty"`
	F      json.RawMessage `json:"f,omitempty"`
	At     int64           `json:"at,omitempty"`
	USD    float64         `json:"usd,omitempty"`
	N      int             `json:"n,omitempty"`
	Origin string          `json:"o,omitempty"`
}

// errEvent marks an event that cannot be shared or was not understood.
var errEvent = errors.New("cluster: invalid event")

func encode(ev Event, origin string) ([]byte, error) {
	if err := check(ev); err != nil {
		return nil, err
	}
	w := wire{K: ev.Kind, Key: ev.Key, A: ev.Account, R: ev.Reason, S: ev.Status, OK: ev.OK, F: ev.Figures, USD: ev.USD, N: ev.N, Origin: origin}
	if !ev.Until.IsZero() {
		w.U = ev.Until.UnixMilli()
	}
	if !ev.At.IsZero() {
		w.At = ev.At.UnixMilli()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errEvent, err)
	}
	return b, nil
}

// decode reads an event written by encode, from Redis or a push; anything
// else there (another program's, a damaged value) is an error, never a panic.
func decode(b []byte) (Event, string, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, "", fmt.Errorf("%w: %w", errEvent, err)
	}
	ev := Event{Kind: w.K, Key: w.Key, Account: w.A, Reason: w.R, Status: w.S, OK: w.OK, USD: w.USD, N: w.N}
	ev.Figures = w.F
	if w.U != 0 {
		ev.Until = time.UnixMilli(w.U)
	}
	if w.At != 0 {
		ev.At = time.UnixMilli(w.At)
	}
	if err := check(ev); err != nil {
		return Event{}, "", err
	}
	return ev, w.Origin, nil
}

// check says whether ev carries what its kind needs.
func check(ev Event) error {
	if !ev.Kind.valid() {
		return fmt.Errorf("%w: kind %q", errEvent, ev.Kind)
	}
	if ev.Kind == AccountRest || ev.Kind == AccountBack {
		if ev.Account == "" {
			return fmt.Errorf("%w: %s without an account", errEvent, ev.Kind)
		}
	} else if ev.Key == "" {
		return fmt.Errorf("%w: %s without a key", errEvent, ev.Kind)
	}
	if (ev.Kind == KeyRest || ev.Kind == AccountRest || ev.Kind == TrialResult || ev.Kind == AccountBack) && ev.Until.IsZero() {
		return fmt.Errorf("%w: %s without a deadline", errEvent, ev.Kind)
	}
	if ev.Kind == Member && (ev.Account == "" || ev.At.IsZero()) {
		return fmt.Errorf("%w: member without an account or a time", errEvent)
	}
	if ev.Kind == FreeUse && ev.N <= 0 {
		return fmt.Errorf("%w: free use of no request", errEvent)
	}
	if ev.Kind == Budget && (ev.At.IsZero() || (len(ev.Figures) > 0 && !json.Valid(ev.Figures))) {
		return fmt.Errorf("%w: budget without a poll time or with figures that are not JSON", errEvent)
	}
	return nil
}
