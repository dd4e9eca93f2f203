package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/simulator"
)

// dayPlan is a scripted day of the key-economics phase: the pool's
// accounts as the simulator starts them at the day's first minute, and the
// traffic's shape. The script is a pure function of the plan and the
// answers' costs, so the same plan gives the same calls.
type dayPlan struct {
	day      time.Time // UTC midnight; the script stays within this day
	accounts []simulator.Account
	seed     uint64
	clients  int // gateway tokens the calls come from, in turn
	// demand is how many times the pool's free quota and credit the
	// script asks for: above 1, so that refusals must come at last.
	demand float64
	// freeWeight is the chance that a call is to a free model while both
	// kinds are still to be sent.
	freeWeight float64
	// maxBurst bounds the calls of one burst, which share a minute;
	// bursts never hold more than freePerMinute free calls, so that a
	// free call refused before the day's quota is spent is never the
	// per-minute limit's due.
	maxBurst int
}

// freePerMinute is OpenRouter's per-account limit on free-model requests a
// minute (simulator.Account).
const freePerMinute = 20

// paidModels are the script's paid models with their weights; freeModels
// its free ones, taken in turn.
var (
	paidModels = []struct {
		model  string
		weight int
	}{{"openai/gpt-4o", 4}, {"openai/gpt-4o-mini", 3}, {"anthropic/claude-3.5-sonnet", 2}, {"meta-llama/llama-3.1-8b-instruct", 1}}
	freeModels = []string{"meta-llama/llama-3.3-70b-instruct:free", "deepseek/deepseek-chat-v3-0324:free", "qwen/qwen3-coder:free"}
)

// econMaxTokens is every scripted call's max_tokens: what pre-authorisation
// weighs, so the last cents of a cap smaller than that go unused by any
// gateway.
const econMaxTokens = 16

// econPrompt is every scripted call's user message.
const econPrompt = "Summarise the meeting notes in one line."

// fullDay is the default run's day: three accounts, seven keys, caps that
// bind on one account and balances on the others, and free quotas partly
// used already (one account never bought credit: 50 a day).
func fullDay() dayPlan {
	return dayPlan{
		day:  time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		seed: 10, clients: 4, demand: 1.25, freeWeight: 0.3, maxBurst: 40,
		accounts: []simulator.Account{
			{ID: "user_econ_A", Balance: 0.05, Purchased: 20, FreeUsedToday: 850, Keys: []simulator.KeySpec{
				{Secret: econSecret(1), Limit: 0.006, LimitReset: "daily"},
				{Secret: econSecret(2), Limit: 0.004, LimitReset: "daily"},
				{Secret: econSecret(3)}}},
			{ID: "user_econ_B", Balance: 0.012, Purchased: 0, FreeUsedToday: 5, Keys: []simulator.KeySpec{
				{Secret: econSecret(4), Limit: 0.005, LimitReset: "daily"},
				{Secret: econSecret(5), Limit: 0.005, LimitReset: "weekly"}}},
			{ID: "user_econ_C", Balance: 0.008, Purchased: 10, FreeUsedToday: 940, Keys: []simulator.KeySpec{
				{Secret: econSecret(6), Limit: 0.02, LimitReset: "monthly"},
				{Secret: econSecret(7)}}},
		},
	}
}

// tinyDay is the same kind of day shrunk to a few dozen calls, for -quick
// and the bench's tests: two accounts, one with a capped key.
func tinyDay() dayPlan {
	return dayPlan{
		day:  time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		seed: 10, clients: 2, demand: 1.3, freeWeight: 0.4, maxBurst: 8,
		accounts: []simulator.Account{
			{ID: "user_tiny_A", Balance: 0.004, Purchased: 20, FreeUsedToday: 990, Keys: []simulator.KeySpec{
				{Secret: econSecret(1), Limit: 0.001, LimitReset: "daily"}, {Secret: econSecret(2)}}},
			{ID: "user_tiny_B", Balance: 0.002, Purchased: 0, FreeUsedToday: 44, Keys: []simulator.KeySpec{
				{Secret: econSecret(3)}}},
		},
	}
}

func econSecret(i int) string {
	return benchKey("economy", i)
}

// secrets are the plan's keys in pool order (ids 1..n).
func (p dayPlan) secrets() []string {
	var out []string
	for _, a := range p.accounts {
		for _, k := range a.Keys {
			out = append(out, k.Secret)
		}
	}
	return out
}

// scriptCall is one call of the day.
type scriptCall struct {
	at     time.Duration // since the day's midnight
	model  string
	free   bool
	client int
}

// capacity is what the pool can serve today: the free-model requests left
// on every account, and the credit every account can still spend (its
// balance, or less when caps bind every one of its keys).
type capacity struct {
	free   int
	credit float64
}

// capacityOf reads the pool's capacity off sim as it stands.
func (p dayPlan) capacityOf(sim *simulator.Server) (capacity, error) {
	var c capacity
	for _, a := range p.accounts {
		caps := 0.0
		for _, k := range a.Keys {
			ki, ok := sim.KeyInfo(k.Secret)
			if !ok {
				return c, fmt.Errorf("economy: the simulator does not know a key of %s", a.ID)
			}
			if ki.LimitRemaining == nil {
				caps = math.Inf(1)
			} else {
				caps += *ki.LimitRemaining
			}
		}
		ki, _ := sim.KeyInfo(a.Keys[0].Secret)
		c.free += max(ki.FreeLimit-ki.FreeUsed, 0)
		c.credit += math.Min(ki.Balance, caps)
	}
	return c, nil
}

// used is what the pool served of its capacity since start: start less
// now, as sim's books say.
func (p dayPlan) used(sim *simulator.Server, start capacity) (capacity, error) {
	now, err := p.capacityOf(sim)
	return capacity{free: start.free - now.free, credit: start.credit - now.credit}, err
}

// answerCosts is what one scripted call of each paid model costs, read from
// a throwaway simulator's usage.cost: the script sizes its paid traffic
// with them.
func answerCosts() (map[string]float64, error) {
	key := benchKey("economy probe", 0)
	sim := simulator.New(simulator.Options{Keys: map[string]simulator.Profile{key: {}}})
	defer sim.Close()
	costs := map[string]float64{}
	for _, m := range paidModels {
		req := httptest.NewRequest(http.MethodPost, simulator.PathPrefix+"/chat/completions", strings.NewReader(chatBody(m.model)))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		var doc struct {
			Usage struct {
				Cost float64 `json:"cost"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != http.StatusOK || doc.Usage.Cost <= 0 {
			return nil, fmt.Errorf("economy: probing the cost of %s: status %d, %v", m.model, rec.Code, err)
		}
		costs[m.model] = doc.Usage.Cost
	}
	return costs, nil
}

// chatBody is a scripted call's request.
func chatBody(model string) string {
	return `{"model":"` + model + `","max_tokens":` + strconv.Itoa(econMaxTokens) +
		`,"messages":[{"role":"user","content":"` + econPrompt + `"}]}`
}

// script is the day's calls: demand times the free quota in free calls and
// paid calls whose costs add up to demand times the credit, mixed at
// random, grouped into bursts of random size (mostly small, now and then
// large) that fall on distinct minutes spread evenly over the day, one
// call a second within a burst.
func (p dayPlan) script(c capacity, costs map[string]float64) ([]scriptCall, error) {
	rng := rand.New(rand.NewPCG(p.seed, 0x6b6579676174))
	freeLeft := int(math.Ceil(p.demand * float64(c.free)))
	creditLeft := p.demand * c.credit
	totalWeight := 0
	for _, m := range paidModels {
		totalWeight += m.weight
	}
	var calls []scriptCall
	for freeLeft > 0 || creditLeft > 0 {
		free := creditLeft <= 0 || (freeLeft > 0 && rng.Float64() < p.freeWeight)
		sc := scriptCall{free: free, client: len(calls) % p.clients}
		if free {
			sc.model = freeModels[freeLeft%len(freeModels)]
			freeLeft--
		} else {
			w := rng.IntN(totalWeight)
			for _, m := range paidModels {
				if w -= m.weight; w < 0 {
					sc.model = m.model
					break
				}
			}
			creditLeft -= costs[sc.model]
		}
		calls = append(calls, sc)
	}
	// Bursts: sizes first, then their minutes.
	var starts []int
	for i := 0; i < len(calls); {
		size := 1 + rng.IntN(4)
		if rng.IntN(8) == 0 {
			size = 1 + rng.IntN(p.maxBurst)
		}
		starts = append(starts, i)
		free := 0
		for n := 0; n < size && i < len(calls); n++ {
			if calls[i].free {
				if free == freePerMinute {
					break
				}
				free++
			}
			i++
		}
	}
	const minutes = 24*60 - 1
	if len(starts) > minutes {
		return nil, fmt.Errorf("economy: %d bursts do not fit in a day's minutes", len(starts))
	}
	for b, start := range starts {
		end := len(calls)
		if b+1 < len(starts) {
			end = starts[b+1]
		}
		minute := b * minutes / len(starts)
		for i := start; i < end; i++ {
			calls[i].at = time.Duration(minute)*time.Minute + time.Duration(i-start)*time.Second
		}
	}
	return calls, nil
}
