package simulator

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// Account is an OpenRouter account as the simulator models it: it owns
// keys, holds the credit balance they all spend, and the free-model quotas
// they all share (20 requests a minute, 50 or 1000 a day across every
// ":free" model and every key of the account).
type Account struct {
	// ID is the account's user id, reported as creator_user_id by GET /key
	// and as user_id in error bodies (default "user_" plus a digest of the
	// first key).
	ID string
	// Balance is the credit left, in USD, when the simulator starts. Each
	// paid answer takes its cost off it; a negative balance refuses even
	// free models.
	Balance float64
	// Purchased is the credit bought over the account's life, in USD: 10 or
	// more unlocks 1000 free-model requests a day instead of 50, and 0 makes
	// its keys report is_free_tier.
	Purchased float64
	// FreeUsedToday is how many free-model requests the account has made
	// today already (UTC) when the simulator starts, to start near a quota.
	FreeUsedToday int
	// Keys are the account's keys.
	Keys []KeySpec
}

// KeySpec is one key of an Account.
type KeySpec struct {
	// Secret is the raw bearer token.
	Secret string
	// Label is what GET /key reports as label (default the masked secret).
	Label string
	// Limit is the key's credit cap in USD; 0 or less means none (null).
	Limit float64
	// LimitReset is when the cap starts afresh: "daily", "weekly" (Monday),
	// "monthly" (UTC), or "" for never (counted over all time).
	LimitReset string
	// Usage is what the key has spent already, in USD, when the simulator
	// starts; it counts in today's, this week's and this month's usage too.
	Usage float64
	// Management makes it a management key: it may read GET /credits but
	// gets 403 on completions.
	Management bool
	// Profile is how the key misbehaves on top of the account's rules.
	Profile Profile
}

// legacyBalance is the balance of the account each key of Options.Keys gets
// to itself: enough that tests and benchmarks never run out.
const legacyBalance = 1_000_000

// period is a limit_reset value.
type period int

const (
	periodNever period = iota
	periodDaily
	periodWeekly
	periodMonthly
)

var periodNames = [...]string{periodNever: "", periodDaily: "daily", periodWeekly: "weekly", periodMonthly: "monthly"}

func parsePeriod(s string) (period, error) {
	for i, n := range periodNames {
		if s == n {
			return period(i), nil
		}
	}
	return 0, fmt.Errorf("simulator: limit_reset %q is not daily, weekly, monthly or empty", s)
}

// index numbers the UTC period holding t, so that two instants are in the
// same period exactly when their indexes are equal.
func (p period) index(t time.Time) int64 {
	t = t.UTC()
	day := floorDiv(t.Unix(), 86400)
	switch p {
	case periodDaily:
		return day
	case periodWeekly:
		return (day + 3) / 7 // 1970-01-01 was a Thursday: weeks start on Monday
	case periodMonthly:
		return int64(t.Year())*12 + int64(t.Month())
	}
	return 0
}

// bucket is an amount counted within one period; it reads as zero once the
// period is over.
type bucket struct {
	idx int64
	n   int64
}

func (b *bucket) get(idx int64) int64 {
	if b.idx != idx {
		return 0
	}
	return b.n
}

func (b *bucket) add(idx, n int64) {
	if b.idx != idx {
		b.idx, b.n = idx, 0
	}
	b.n += n
}

// budget is a key's spending: its cap and its usage per period. It is
// guarded by its account's mutex.
type budget struct {
	limit      int64 // nano-USD; meaningful when hasLimit
	hasLimit   bool
	reset      period
	total      int64
	charged    int64 // since start: total less the starting usage
	day, week  bucket
	month      bucket
	management bool
	label      string
}

func (b *budget) add(now time.Time, n int64) {
	b.total += n
	b.day.add(periodDaily.index(now), n)
	b.week.add(periodWeekly.index(now), n)
	b.month.add(periodMonthly.index(now), n)
}

// used is the usage that counts against the cap now.
func (b *budget) used(now time.Time) int64 {
	switch b.reset {
	case periodDaily:
		return b.day.get(periodDaily.index(now))
	case periodWeekly:
		return b.week.get(periodWeekly.index(now))
	case periodMonthly:
		return b.month.get(periodMonthly.index(now))
	}
	return b.total
}

// remaining is what the cap still allows, never below zero; ok is false
// when the key has no cap.
func (b *budget) remaining(now time.Time) (n int64, ok bool) {
	if !b.hasLimit {
		return 0, false
	}
	return max(b.limit-b.used(now), 0), true
}

// account is an Account's live state. One mutex per account guards it and
// its keys' budgets; it is never held across a sleep or a write.
type account struct {
	mu        sync.Mutex
	id        string
	credits   int64 // balance at start
	balance   int64
	purchased int64
	freeMin   bucket // minute index
	freeDay   bucket // UTC day index
}

// freeDayLimit is the account's free-model requests per day.
func (a *account) freeDayLimit() int64 {
	if a.purchased >= highTierPurchased {
		return freePerDayHigh
	}
	return freePerDayLow
}

// nanos converts USD to nano-USD, rounding to the nearest.
func nanos(usd float64) int64 { return int64(math.Round(usd * nanosPerUSD)) }

// usd converts nano-USD to USD.
func usd(n int64) float64 { return float64(n) / nanosPerUSD }

// appendUSD appends n nano-USD as an exact decimal number of USD, without
// trailing zeros: 2500 gives "0.0000025", 1500000000 gives "1.5".
func appendUSD(dst []byte, n int64) []byte {
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	dst = strconv.AppendInt(dst, n/nanosPerUSD, 10)
	frac := n % nanosPerUSD
	if frac == 0 {
		return dst
	}
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 9
	for digits[end-1] == '0' {
		end--
	}
	dst = append(dst, '.')
	return append(dst, digits[:end]...)
}

// newAccount builds the live state of a; now places the starting usage.
func newAccount(a Account, now time.Time) (*account, error) {
	st := &account{
		id:        a.ID,
		credits:   nanos(a.Balance),
		balance:   nanos(a.Balance),
		purchased: nanos(a.Purchased),
	}
	if a.FreeUsedToday < 0 {
		return nil, fmt.Errorf("simulator: account %q: FreeUsedToday %d is negative", a.ID, a.FreeUsedToday)
	}
	st.freeDay.add(periodDaily.index(now), int64(a.FreeUsedToday))
	return st, nil
}

// newBudget builds a key's budget from its spec.
func newBudget(k KeySpec, now time.Time) (budget, error) {
	p, err := parsePeriod(k.LimitReset)
	if err != nil {
		return budget{}, err
	}
	b := budget{reset: p, management: k.Management, label: k.Label}
	if k.Limit > 0 {
		b.limit, b.hasLimit = nanos(k.Limit), true
	}
	if k.Usage < 0 {
		return budget{}, fmt.Errorf("simulator: key usage %v is negative", k.Usage)
	}
	if u := nanos(k.Usage); u > 0 {
		b.add(now, u)
	}
	return b, nil
}
