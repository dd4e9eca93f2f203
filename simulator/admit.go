package simulator

import "time"

// ask is what a request would cost: what pre-authorisation weighs (the
// prompt and the most tokens it may produce) and what the answer built for
// it actually costs.
type ask struct {
	model     string
	price     price
	prompt    int   // prompt tokens
	maxTokens int   // max_tokens asked for; 0 means the model's default
	cost      int64 // nano-USD the answer costs, charged when admitted
}

// tokensAsked is max_tokens, or the model's default maximum output when the
// request sets none (pre-authorisation counts with it either way).
func (q *ask) tokensAsked() int64 {
	if q.maxTokens < 0 { // embeddings: no output
		return 0
	}
	if q.maxTokens > 0 {
		return int64(q.maxTokens)
	}
	return int64(q.price.maxOutput)
}

// admit applies the account's and the key's rules to a request, as
// OpenRouter does before it answers, and charges the answer's cost when the
// request passes: a negative balance refuses everything; a :free model
// counts against the account's free-model quotas (per minute and per UTC
// day) and costs nothing, unless the key's cap is spent; a paid model must
// fit, with max_tokens, in what the key's cap and the account's balance
// allow. Check and charge happen under the account's lock, so concurrent
// requests cannot overspend.
func (k *keyState) admit(now time.Time, q *ask) *refusal {
	a := k.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	asked := q.tokensAsked()
	if a.balance < 0 {
		return afford402(a.id, asked, 0, false)
	}
	if isFree(q.model) {
		if rem, capped := k.bud.remaining(now); capped && rem <= 0 {
			// A spent cap refuses free models too ("can only afford 0").
			return afford402(a.id, asked, 0, true)
		}
		day, minute := periodDaily.index(now), floorDiv(now.Unix(), 60)
		if lim := a.freeDayLimit(); a.freeDay.get(day) >= lim {
			return freeQuota429(a.id, true, lim == freePerDayHigh, lim, (day+1)*86400_000)
		}
		if a.freeMin.get(minute) >= freePerMinute {
			return freeQuota429(a.id, false, false, freePerMinute, (minute+1)*60_000)
		}
		a.freeDay.add(day, 1)
		a.freeMin.add(minute, 1)
		return nil
	}
	promptCost := int64(q.prompt) * q.price.prompt
	need := promptCost + asked*q.price.completion
	afford := func(have int64) int64 {
		switch {
		case have <= promptCost:
			return 0
		case q.price.completion == 0:
			return asked
		}
		return min((have-promptCost)/q.price.completion, asked)
	}
	if rem, capped := k.bud.remaining(now); capped && rem < need && rem <= a.balance {
		if rem > 0 && rem <= promptCost {
			// The prompt alone is over what the cap has left.
			return promptLimit402(a.id, int64(q.prompt), rem/q.price.prompt)
		}
		return afford402(a.id, asked, afford(rem), true)
	}
	if a.balance < need {
		return afford402(a.id, asked, afford(a.balance), false)
	}
	a.balance -= q.cost
	k.bud.add(now, q.cost)
	k.bud.charged += q.cost
	return nil
}

// floorDiv is a/b rounded towards minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
