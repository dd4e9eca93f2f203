package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/secret"
)

// addKeys builds the accounts of opts: one per Options.Keys key, and those
// of Options.Accounts.
func (s *Server) addKeys(opts Options) error {
	now := opts.Now()
	for k, p := range opts.Keys {
		ks := newKeyState(k, p)
		id := "user_" + string(appendToken(nil, ks.hash))
		ks.acct, _ = newAccount(Account{ID: id, Balance: legacyBalance, Purchased: legacyBalance}, now)
		ks.bud = budget{label: secret.Mask(k)}
		s.keys[k] = ks
	}
	for i, a := range opts.Accounts {
		if len(a.Keys) == 0 {
			return fmt.Errorf("simulator: account %d (%q) has no key", i, a.ID)
		}
		if a.ID == "" {
			a.ID = "user_" + string(appendToken(nil, fnv64(a.Keys[0].Secret)))
		}
		acct, err := newAccount(a, now)
		if err != nil {
			return err
		}
		for _, spec := range a.Keys {
			if spec.Secret == "" {
				return fmt.Errorf("simulator: account %q has a key without a secret", a.ID)
			}
			if _, dup := s.keys[spec.Secret]; dup {
				return fmt.Errorf("simulator: key %s is listed twice", secret.Mask(spec.Secret))
			}
			bud, err := newBudget(spec, now)
			if err != nil {
				return fmt.Errorf("simulator: key %s: %w", secret.Mask(spec.Secret), err)
			}
			if bud.label == "" {
				bud.label = secret.Mask(spec.Secret)
			}
			ks := newKeyState(spec.Secret, spec.Profile)
			ks.acct, ks.bud = acct, bud
			s.keys[spec.Secret] = ks
		}
	}
	return nil
}

// KeyInfo is what the simulator knows of a key's spending and its account,
// read at one instant; money in USD.
type KeyInfo struct {
	// Account is the owning account's id (creator_user_id).
	Account string
	// Label is the key's label.
	Label string
	// Limit is the key's cap, and LimitRemaining what is left of it; both
	// are nil for a key without a cap.
	Limit, LimitRemaining *float64
	// LimitReset is "daily", "weekly", "monthly" or "" (never).
	LimitReset string
	// Usage is the key's spending over all time, UsageDaily over the UTC
	// day, UsageWeekly since Monday, UsageMonthly over the UTC month.
	Usage, UsageDaily, UsageWeekly, UsageMonthly float64
	// Balance is the account's credit left; Spent what the account spent
	// since the simulator started.
	Balance, Spent float64
	// FreeUsed and FreeLimit are the account's free-model requests today
	// and its daily quota (50 or 1000).
	FreeUsed, FreeLimit int
	// Management tells a management key.
	Management bool
}

// KeyInfo returns the budget of key, as GET /key would report it now, and
// false for a key the simulator does not know.
func (s *Server) KeyInfo(key string) (KeyInfo, bool) {
	ks := s.keys[key]
	if ks == nil {
		return KeyInfo{}, false
	}
	return ks.info(s.opts.Now()), true
}

// Spent returns what the simulator charged key since it started (the sum
// of the usage.cost of its answers; not its starting Usage), in USD; 0 for
// an unknown key. An e2e test compares it with the spend keygate reports.
func (s *Server) Spent(key string) float64 {
	ks := s.keys[key]
	if ks == nil {
		return 0
	}
	ks.acct.mu.Lock()
	defer ks.acct.mu.Unlock()
	return usd(ks.bud.charged)
}

// AddCredits buys usd of credits for the account with id accountID, as its
// owner would on OpenRouter's site: the balance and the purchased total
// grow (10 bought unlocks 1000 free requests a day). A test uses it to see
// keys come back once a budget poll shows credit. It reports false for an
// unknown account.
func (s *Server) AddCredits(accountID string, usd float64) bool {
	for _, ks := range s.keys {
		if a := ks.acct; a.id == accountID {
			n := nanos(usd)
			a.mu.Lock()
			a.balance += n
			a.credits += n
			a.purchased += n
			a.mu.Unlock()
			return true
		}
	}
	return false
}

func (k *keyState) info(now time.Time) KeyInfo {
	a := k.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	b := &k.bud
	ki := KeyInfo{
		Account:      a.id,
		Label:        b.label,
		LimitReset:   periodNames[b.reset],
		Usage:        usd(b.total),
		UsageDaily:   usd(b.day.get(periodDaily.index(now))),
		UsageWeekly:  usd(b.week.get(periodWeekly.index(now))),
		UsageMonthly: usd(b.month.get(periodMonthly.index(now))),
		Balance:      usd(a.balance),
		Spent:        usd(a.credits - a.balance),
		FreeUsed:     int(a.freeDay.get(periodDaily.index(now))),
		FreeLimit:    int(a.freeDayLimit()),
		Management:   b.management,
	}
	if rem, ok := b.remaining(now); ok {
		lim, r := usd(b.limit), usd(rem)
		ki.Limit, ki.LimitRemaining = &lim, &r
	}
	return ki
}

// keyData is the "data" of GET /key, field for field as openapi.yaml's
// getCurrentKey and @openrouter/sdk's GetCurrentKeyData have it.
type keyData struct {
	Label              string         `json:"label"`
	Limit              *float64       `json:"limit"`
	LimitRemaining     *float64       `json:"limit_remaining"`
	LimitReset         *string        `json:"limit_reset"`
	IncludeBYOKInLimit bool           `json:"include_byok_in_limit"`
	Usage              float64        `json:"usage"`
	UsageDaily         float64        `json:"usage_daily"`
	UsageWeekly        float64        `json:"usage_weekly"`
	UsageMonthly       float64        `json:"usage_monthly"`
	BYOKUsage          float64        `json:"byok_usage"`
	BYOKUsageDaily     float64        `json:"byok_usage_daily"`
	BYOKUsageWeekly    float64        `json:"byok_usage_weekly"`
	BYOKUsageMonthly   float64        `json:"byok_usage_monthly"`
	IsFreeTier         bool           `json:"is_free_tier"`
	IsManagementKey    bool           `json:"is_management_key"`
	IsProvisioningKey  bool           `json:"is_provisioning_key"`
	CreatorUserID      string         `json:"creator_user_id"`
	OrganizationID     *string        `json:"organization_id"`
	WorkspaceID        *string        `json:"workspace_id"`
	AllowedDataRegions []string       `json:"allowed_data_regions"`
	ExpiresAt          *string        `json:"expires_at"`
	RateLimit          keyRateLimit   `json:"rate_limit"`
	FreeModelDaily     freeModelDaily `json:"free_model_daily_requests"`
}

type keyRateLimit struct {
	Requests int    `json:"requests"`
	Interval string `json:"interval"`
	Note     string `json:"note"`
}

type freeModelDaily struct {
	Used      int `json:"used"`
	Limit     int `json:"limit"`
	Remaining int `json:"remaining"`
}

// serveKey answers GET /key (and its old path /auth/key) with the key's
// budget and its account's free-model requests of the UTC day.
func (c *call) serveKey() {
	if c.f.status >= 400 {
		c.sendStatus(c.f.status, c.f.errorHint())
		return
	}
	ki := c.ks.info(c.s.opts.Now())
	c.ks.acct.mu.Lock()
	freeTier := c.ks.acct.purchased <= 0
	c.ks.acct.mu.Unlock()
	d := keyData{
		Label: ki.Label, Limit: ki.Limit, LimitRemaining: ki.LimitRemaining,
		Usage: ki.Usage, UsageDaily: ki.UsageDaily, UsageWeekly: ki.UsageWeekly, UsageMonthly: ki.UsageMonthly,
		IsFreeTier: freeTier, IsManagementKey: ki.Management, IsProvisioningKey: ki.Management,
		CreatorUserID:      ki.Account,
		AllowedDataRegions: []string{"global"},
		RateLimit:          keyRateLimit{Requests: -1, Interval: "10s", Note: "This field is deprecated and safe to ignore."},
		FreeModelDaily:     freeModelDaily{Used: ki.FreeUsed, Limit: ki.FreeLimit, Remaining: max(ki.FreeLimit-ki.FreeUsed, 0)},
	}
	if ki.LimitReset != "" {
		d.LimitReset = &ki.LimitReset
	}
	c.sendJSON(struct {
		Data keyData `json:"data"`
	}{d})
}

// serveCredits answers GET /credits: 403 to an inference key, as
// OpenRouter does; to a management key the account's credits, where
// total_credits is the balance at start and total_usage what was spent
// since, so that their difference is the balance left.
func (c *call) serveCredits() {
	if c.f.status >= 400 {
		c.sendStatus(c.f.status, c.f.errorHint())
		return
	}
	if !c.ks.bud.management {
		c.sendRefusal(forbidden403("Only management keys can perform this operation"))
		return
	}
	a := c.ks.acct
	a.mu.Lock()
	total, spent := usd(a.credits), usd(a.credits-a.balance)
	a.mu.Unlock()
	type credits struct {
		TotalCredits float64 `json:"total_credits"`
		TotalUsage   float64 `json:"total_usage"`
	}
	c.sendJSON(struct {
		Data credits `json:"data"`
	}{credits{total, spent}})
}

// sendJSON answers 200 with v as JSON.
func (c *call) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.sendError(http.StatusInternalServerError, "encoding reply: "+err.Error(), hint{})
		return
	}
	c.sendBody(http.StatusOK, "application/json", b)
}

// Revoke revokes key while the server runs, as an operator who deletes it
// upstream: every call with it answers 401 from then on, budget reads
// included. It reports whether the key is known.
func (s *Server) Revoke(key string) bool {
	ks := s.keys[key]
	if ks == nil {
		return false
	}
	ks.revoked.Store(true)
	return true
}
