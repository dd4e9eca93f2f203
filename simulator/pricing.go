package simulator

import (
	"strings"
)

// nanosPerUSD is the unit of every amount the simulator keeps: a billionth
// of a US dollar (of an OpenRouter credit), so that sums are exact.
const nanosPerUSD = 1_000_000_000

// Free-model quotas of an account (OpenRouter limits.mdx, free.md).
const (
	freePerMinute  = 20
	freePerDayLow  = 50
	freePerDayHigh = 1000
	// highTierPurchased is the credits bought that unlock freePerDayHigh:
	// "1000/day if ≥ 10 (the higher ceiling starts one credit below, at
	// 9)" (OPENROUTER.md 1.7).
	highTierPurchased = 9 * nanosPerUSD
)

// price is what a model costs, in nano-USD per token, and what bounds its
// output when a request sets no max_tokens.
type price struct {
	prompt, completion int64
	maxOutput          int
}

// modelInfo is one model of the simulated catalogue.
type modelInfo struct {
	id, name, provider, tokenizer, instruct string
	created                                 int64
	context                                 int
	price                                   price
	embedding                               bool
}

// catalogue is what GET /models lists. Prices are OpenRouter's public ones
// at the time of writing; :free models cost nothing but count against the
// account's free-model quota.
var catalogue = [...]modelInfo{
	{id: "openai/gpt-4o", name: "OpenAI: GPT-4o", provider: "OpenAI", tokenizer: "GPT", created: 1715558400, context: 128000, price: price{2500, 10000, 16384}},
	{id: "openai/gpt-4o-mini", name: "OpenAI: GPT-4o-mini", provider: "OpenAI", tokenizer: "GPT", created: 1721260800, context: 128000, price: price{150, 600, 16384}},
	{id: "openai/gpt-3.5-turbo", name: "OpenAI: GPT-3.5 Turbo", provider: "OpenAI", tokenizer: "GPT", created: 1685232000, context: 16385, price: price{500, 1500, 4096}},
	{id: "anthropic/claude-3.5-sonnet", name: "Anthropic: Claude 3.5 Sonnet", provider: "Anthropic", tokenizer: "Claude", created: 1718841600, context: 200000, price: price{3000, 15000, 8192}},
	{id: "google/gemini-flash-1.5", name: "Google: Gemini Flash 1.5", provider: "Google", tokenizer: "Gemini", created: 1715644800, context: 1000000, price: price{75, 300, 8192}},
	{id: "meta-llama/llama-3.1-8b-instruct", name: "Meta: Llama 3.1 8B Instruct", provider: "DeepInfra", tokenizer: "Llama3", instruct: "llama3", created: 1721692800, context: 131072, price: price{20, 50, 16384}},
	{id: "mistralai/mistral-7b-instruct", name: "Mistral: Mistral 7B Instruct", provider: "Together", tokenizer: "Mistral", instruct: "mistral", created: 1716768000, context: 32768, price: price{30, 55, 16384}},
	{id: "meta-llama/llama-3.3-70b-instruct:free", name: "Meta: Llama 3.3 70B Instruct (free)", provider: "Venice", tokenizer: "Llama3", instruct: "llama3", created: 1733506137, context: 131072, price: price{0, 0, 4096}},
	{id: "deepseek/deepseek-chat-v3-0324:free", name: "DeepSeek: DeepSeek V3 0324 (free)", provider: "Chutes", tokenizer: "DeepSeek", created: 1742824755, context: 163840, price: price{0, 0, 8192}},
	{id: "qwen/qwen3-coder:free", name: "Qwen: Qwen3 Coder 480B A35B (free)", provider: "Venice", tokenizer: "Qwen3", created: 1753230546, context: 262144, price: price{0, 0, 8192}},
	{id: "openai/text-embedding-3-small", name: "OpenAI: Text Embedding 3 Small", provider: "OpenAI", tokenizer: "GPT", created: 1706140800, context: 8192, price: price{20, 0, 0}, embedding: true},
}

// defaultPrice is the price of any model not in the catalogue (and of
// "sim/..." models): $1 per million prompt tokens, $2 per million
// completion tokens, at most 4096 tokens out.
var defaultPrice = price{1000, 2000, 4096}

// isFree reports whether model is a free variant (":free"), which costs
// nothing and counts against the account's free-model quota.
func isFree(model string) bool { return strings.HasSuffix(model, ":free") }

// priceOf is the price of model, and the name of the provider that serves
// it (as OpenRouter reports it in "provider" and error metadata).
func priceOf(model string) (price, string) {
	for i := range catalogue {
		if catalogue[i].id == model {
			return catalogue[i].price, catalogue[i].provider
		}
	}
	if isFree(model) {
		return price{0, 0, defaultPrice.maxOutput}, "Simulated"
	}
	return defaultPrice, "Simulated"
}

// cost is what prompt and completion tokens cost at p, in nano-USD, split
// into its prompt and completion parts.
func (p price) cost(prompt, completion int) (total, promptCost, completionCost int64) {
	promptCost = int64(prompt) * p.prompt
	completionCost = int64(completion) * p.completion
	return promptCost + completionCost, promptCost, completionCost
}

// perToken formats a nano-USD per-token price as OpenRouter's pricing
// strings do: USD per token, as a decimal string ("0.0000025").
func perToken(nanos int64) string { return string(appendUSD(nil, nanos)) }
