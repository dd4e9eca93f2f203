// Package budget knows what each key and account can still spend: it polls
// each key's GET <base>/key (OpenRouter's limit, limit_remaining,
// limit_reset, usage, free_model_daily_requests and the owning account),
// takes the usage.cost of every answer off the key's figures between polls,
// and rests keys and blocks free-model calls of accounts with nothing left,
// so that no 402 or 429 is needed to learn it. Picks never read it: what it
// learns goes into the breakers' book, which writes the ledger.
package budget

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Figures are one key's budget as its last GET /key answered, with the
// spend since taken off. Money is in USD credits.
type Figures struct {
	// Limit is the key's credit cap; nil means none.
	Limit *float64
	// LimitRemaining is what is left of the cap; nil means unlimited.
	LimitRemaining *float64
	// LimitReset is when the cap's count restarts: "daily", "weekly",
	// "monthly", or "" for never.
	LimitReset string
	Usage      float64
	UsageDaily float64
	IsFreeTier bool
	// FreeRemaining is the account's free-model requests left today; nil
	// while upstream does not say.
	FreeRemaining *int
	FreeLimit     *int
	// account is the owning account's id; it never leaves keygate.
	account   string
	CheckedAt time.Time
}

type wireKey struct {
	Data *struct {
		Limit          *float64 `json:"limit"`
		LimitRemaining *float64 `json:"limit_remaining"`
		LimitReset     *string  `json:"limit_reset"`
		Usage          float64  `json:"usage"`
		UsageDaily     float64  `json:"usage_daily"`
		IsFreeTier     bool     `json:"is_free_tier"`
		CreatorUserID  string   `json:"creator_user_id"`
		FreeDaily      *struct {
			Used      *int `json:"used"`
			Limit     *int `json:"limit"`
			Remaining *int `json:"remaining"`
		} `json:"free_model_daily_requests"`
	} `json:"data"`
}

// ParseKey reads a GET /key answer.
func ParseKey(body []byte, now time.Time) (Figures, error) {
	var w wireKey
	if err := json.Unmarshal(body, &w); err != nil {
		return Figures{}, fmt.Errorf("budget: reading GET /key answer: %w", err)
	}
	if w.Data == nil {
		return Figures{}, fmt.Errorf("budget: GET /key answer has no data")
	}
	d := w.Data
	f := Figures{Limit: finite(d.Limit), LimitRemaining: finite(d.LimitRemaining), Usage: d.Usage,
		UsageDaily: d.UsageDaily, IsFreeTier: d.IsFreeTier, CheckedAt: now}
	if f.Limit == nil {
		// Without a cap nothing of it can be left or spent.
		f.LimitRemaining = nil
	}
	if d.LimitReset != nil {
		switch *d.LimitReset {
		case "daily", "weekly", "monthly":
			f.LimitReset = *d.LimitReset
		}
	}
	if len(d.CreatorUserID) <= 128 {
		f.account = d.CreatorUserID
	}
	if fd := d.FreeDaily; fd != nil && fd.Remaining != nil && *fd.Remaining >= 0 {
		r := *fd.Remaining
		f.FreeRemaining = &r
		if fd.Limit != nil && *fd.Limit >= 0 {
			l := *fd.Limit
			f.FreeLimit = &l
		}
	}
	return f, nil
}

func finite(p *float64) *float64 {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return nil
	}
	v := *p
	return &v
}

// NextReset is when a key's cap with limit_reset reset restarts after now
// (UTC day, week from Monday, month); the zero time for never.
func NextReset(reset string, now time.Time) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch reset {
	case "daily":
		return day.AddDate(0, 0, 1)
	case "weekly":
		days := (8 - int(now.Weekday())) % 7
		if days == 0 {
			days = 7
		}
		return day.AddDate(0, 0, days)
	case "monthly":
		return time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// USD writes an amount of dollars for people (the console's 💳 lines, the
// status page): cents, and below ten cents enough places for two
// significant digits (at most six), so that a cap nearly spent neither
// reads as more than it has ($0.005 is not "$0.01") nor as nothing while
// it still pays ($0.001 is not "$0.00").
func USD(v float64) string {
	prec := 2
	for a := math.Abs(v); a != 0 && a < 0.1 && prec < 6; a *= 10 {
		prec++
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if prec > 2 {
		s = strings.TrimRight(s, "0")
		if i := strings.IndexByte(s, '.'); len(s)-i-1 < 2 {
			s += strings.Repeat("0", 2-(len(s)-i-1))
		}
	}
	if s[0] == '-' {
		return "-$" + s[1:]
	}
	return "$" + s
}
