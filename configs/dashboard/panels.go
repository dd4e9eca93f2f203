package main

// The dashboard's rows. Every query adds up the keygate replicas one
// Prometheus scrapes (docker-compose --scale keygate=3): counters and
// in-flight counts with sum, facts the replicas share through Redis (key
// state, rest, budget, free requests) with max, so three replicas show
// one key once and its budget once.

const (
	rate     = "[$__rate_interval]"
	keyMatch = `key=~"$key"`
)

// keyStates are keygate_key_state's values.
var keyStates = []step{{0, "closed", "green"}, {1, "half-open", "yellow"}, {2, "open", "red"}}

func rows() []row {
	return []row{
		{"Overview", []panel{
			{series("Gateway requests by route and code",
				"Requests answered by keygate per second, by route (run, passthrough) and HTTP status, all replicas.",
				"reqps",
				query{"sum by (route, code) (rate(keygate_requests_total" + rate + "))", "{{route}} {{code}}"}), 6},
			{series("Gateway latency p50 / p95 / p99 by route",
				"Whole-request duration at the gateway. A /run call lasts as long as its slowest model; a streamed passthrough as long as its stream.",
				"s",
				latency("0.5", "route", "keygate_request_duration_seconds_bucket", "", "p50 {{route}}"),
				latency("0.95", "route", "keygate_request_duration_seconds_bucket", "", "p95 {{route}}"),
				latency("0.99", "route", "keygate_request_duration_seconds_bucket", "", "p99 {{route}}")), 6},
			{series("Keys available",
				"Keys in rotation right now (on the replica that has fewest), against the keys configured. Zero means clients get 503 keys_unavailable.",
				"short",
				query{"min(keygate_keys_available)", "available"},
				query{"count(max by (key) (keygate_key_state))", "configured"}), 6},
			{series("Upstream error and 429 share",
				"Share of upstream answers that were 5xx, a timeout or a network error, and share that were 429, over all keys and replicas.",
				"percentunit",
				query{`(sum(rate(keygate_upstream_requests_total{code=~"5..|error"}` + rate + `)) or vector(0)) / sum(rate(keygate_upstream_requests_total` + rate + `))`, "5xx / error"},
				query{`(sum(rate(keygate_upstream_requests_total{code="429"}` + rate + `)) or vector(0)) / sum(rate(keygate_upstream_requests_total` + rate + `))`, "429"}), 6},
		}},
		{"Keys", []panel{
			{series("Upstream requests per key",
				"Upstream calls per second made with each key, whatever the answer.",
				"reqps",
				query{"sum by (key) (rate(keygate_upstream_requests_total{" + keyMatch + "}" + rate + "))", "key {{key}}"}), 12},
			{series("Key selections per key and strategy",
				"How often the rotation strategy picked each key.",
				"reqps",
				query{"sum by (key, strategy) (rate(keygate_key_selected_total{" + keyMatch + "}" + rate + "))", "key {{key}} {{strategy}}"}), 12},
			{timeline("Key states",
				"Breaker state of each key: closed (in rotation), half-open (one trial request at a time after a cooldown), open (cooling down).",
				keyStates,
				query{"max by (key) (keygate_key_state{" + keyMatch + "})", "key {{key}}"}), fullWidth},
			{series("401 / 402 / 403 and 429 per key",
				"Auth failures, spent budgets and rate limits per key, as upstream answered them; the Retries/cooldowns row says which of them rested a key and why.",
				"reqps",
				query{"sum by (key, code) (rate(keygate_upstream_requests_total{" + keyMatch + `, code=~"401|402|403|429"}` + rate + "))", "key {{key}} {{code}}"}), 8},
			{series("In flight per key",
				"Upstream calls using each key right now, all replicas.",
				"short",
				query{"sum by (key) (keygate_key_in_flight{" + keyMatch + "})", "key {{key}}"}), 8},
			{series("Rest left per key",
				"Time until each resting key is back in rotation; 0 while it is in rotation.",
				"s",
				query{"max by (key) (keygate_key_rest_seconds{" + keyMatch + "})", "key {{key}}"}), 8},
		}},
		{"Budgets", []panel{
			{signed("Budget remaining per key",
				"US dollars each key may still spend: its limit_remaining at the last budget poll less what answers cost since (below zero when answers cost more than was left). No line: the key has no limit, or its budget is not known yet.",
				"currencyUSD",
				query{"max by (key) (keygate_key_budget_remaining_usd{" + keyMatch + "})", "key {{key}}"}), 8},
			{series("Spend per key",
				"US dollars per hour spent with each key, from the usage.cost of its answers, all replicas.",
				"currencyUSD",
				query{"sum by (key) (rate(keygate_key_spend_usd_total{" + keyMatch + "}" + rate + ")) * 3600", "key {{key}}"}).
				AxisLabel("per hour"), 8},
			{series("Spend per model",
				"US dollars per hour spent per model (models past the 200th distinct one count as other), all replicas.",
				"currencyUSD",
				query{"sum by (model) (rate(keygate_key_spend_usd_total{" + keyMatch + "}" + rate + ")) * 3600", "{{model}}"}).
				AxisLabel("per hour"), 8},
			{series("Free requests left per account",
				"Free-model requests each account has left today (free_model_daily_requests); a :free call is not sent to an account at 0. Accounts are named by a short digest, never their id.",
				"short",
				query{"max by (account) (keygate_account_free_requests_remaining)", "account {{account}}"}), 12},
			{bars("Budget and quota cooldowns",
				"Keys rested because a budget ran out: key_limit (the key's own limit), credits (the account's balance), free_quota (free models per day), in_flight_budget (the account's in-flight budget).",
				"short",
				query{"sum by (reason) (increase(keygate_key_cooldowns_total{" + keyMatch + `, reason=~"key_limit|credits|free_quota|in_flight_budget"}` + rate + "))", "{{reason}}"}), 12},
		}},
		{"Upstream latency", []panel{
			{series("Upstream latency p50 per key",
				"50th percentile of upstream time to response headers per key (a stream's body is not included).",
				"s",
				latency("0.5", "key", "keygate_upstream_request_duration_seconds_bucket", keyMatch, "key {{key}}")), 8},
			{series("Upstream latency p95 per key",
				"95th percentile of upstream time to response headers per key (a stream's body is not included).",
				"s",
				latency("0.95", "key", "keygate_upstream_request_duration_seconds_bucket", keyMatch, "key {{key}}")), 8},
			{series("Upstream latency p99 per key",
				"99th percentile of upstream time to response headers per key (a stream's body is not included).",
				"s",
				latency("0.99", "key", "keygate_upstream_request_duration_seconds_bucket", keyMatch, "key {{key}}")), 8},
		}},
		{"Tokens", []panel{
			{series("Tokens per key",
				"Prompt and completion tokens per second, as reported by the upstream, per key.",
				"short",
				query{"sum by (key, type) (rate(keygate_tokens_total{" + keyMatch + "}" + rate + "))", "key {{key}} {{type}}"}).
				AxisLabel("tokens/s"), 12},
			{series("Tokens per model",
				"Prompt and completion tokens per second per model (models past the 200th distinct one count as other).",
				"short",
				query{"sum by (model, type) (rate(keygate_tokens_total{" + keyMatch + "}" + rate + "))", "{{model}} {{type}}"}).
				AxisLabel("tokens/s"), 12},
		}},
		{"Retries/cooldowns", []panel{
			{series("Retries by reason",
				"Requests sent again on another key per second, by the fault of the previous key or its account (auth, rate_limit, key_limit, credits, free_quota, in_flight_budget), or afford: a request too large for what the previous key's cap or account had left, which rests nothing.",
				"reqps",
				query{"sum by (reason) (rate(keygate_retries_total" + rate + "))", "{{reason}}"}), 8},
			{bars("Cooldowns started per key",
				"Cooldowns started in each interval, per key and reason.",
				"short",
				query{"sum by (key, reason) (increase(keygate_key_cooldowns_total{" + keyMatch + "}" + rate + "))", "key {{key}} {{reason}}"}), 8},
			{bars("Cooldowns by reason",
				"Cooldowns started in each interval over the selected keys, by reason.",
				"short",
				query{"sum by (reason) (increase(keygate_key_cooldowns_total{" + keyMatch + "}" + rate + "))", "{{reason}}"}), 8},
		}},
		{"Streams, pool and Redis", []panel{
			{series("Stream failovers by reason",
				"Held streams sent again on another key per second before any byte reached the client: the first event was an error (error_event), the stream ended before any data (closed_before_data), or reading it failed (read_error).",
				"reqps",
				query{"sum by (reason) (rate(keygate_stream_failovers_total" + rate + "))", "{{reason}}"}), 8},
			{bars("Pool reloads",
				"Reloads of the key pool in each interval (KEYS_FILE changed, SIGHUP, POST /admin/reload): ok (the new pool was taken) or refused (the source did not parse, held no key, or there is none to re-read, as in -demo; the last good pool stays).",
				"short",
				query{"sum by (result) (increase(keygate_pool_reloads_total" + rate + "))", "{{result}}"}), 8},
			{timeline("Redis up per replica",
				"Whether each replica reaches the shared Redis (REDIS_URL). Down, a replica goes on with what it knows and catches up later. No rows: Redis is not configured.",
				[]step{{0, "down", "red"}, {1, "up", "green"}},
				query{"min by (instance) (keygate_redis_up)", "{{instance}}"}), 8},
		}},
	}
}

// latency is a histogram_quantile over every replica's buckets of metric,
// by label, filtered by match when it is not empty.
func latency(q, by, metric, match, legend string) query {
	sel := metric
	if match != "" {
		sel += "{" + match + "}"
	}
	return query{"histogram_quantile(" + q + ", sum by (" + by + ", le) (rate(" + sel + rate + ")))", legend}
}
