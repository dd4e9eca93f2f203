// Package simulator is a simulated OpenAI-compatible upstream, shaped like
// OpenRouter, for running keygate offline: `keygate -demo`, the end-to-end
// and chaos tests, and the load benchmarks point OPENROUTER_BASE_URL at it.
//
// Endpoints, under PathPrefix ("/api/v1"), each needing
// "Authorization: Bearer <key>" with a known key (else 401 "User not
// found."):
//
//	POST /chat/completions  a reply naming the model and echoing the last
//	                        user message; "stream": true gives server-sent
//	                        events, flushed chunk by chunk; with
//	                        "response_format" json_object or json_schema
//	                        the reply is that JSON (the text in its first
//	                        string property)
//	POST /responses         the same reply as an OpenAI Responses API
//	                        object, or its typed events when streamed
//	                        ("text": {"format"} as response_format)
//	POST /embeddings        one deterministic unit vector per input
//	GET  /models            the catalogue in OpenRouter's schema, prices
//	                        included
//	GET  /key               the key's budget (also at the old /auth/key)
//	GET  /credits           403 to an inference key; the account's credits
//	                        to a management key
//	GET  /generation?id=    a chat answer's cost and tokens, to the keys of
//	                        the account that made it (the latest 4096);
//	                        404 to another account's
//	any  /echo, /echo/...   the request itself as JSON (method, URI, query,
//	                        headers, body), to see what reached the upstream
//
// Economics, as OpenRouter has them (see Account and KeySpec): accounts own
// keys; a key may have a credit cap that resets daily, weekly (Monday) or
// monthly (UTC); the account has the balance and the free-model quotas, 20
// requests a minute and 50 a day (1000 once 10 credits were bought), counted
// across every ":free" model and every key of the account. A paid answer
// costs its tokens at the model's price (words count as tokens), reported as
// usage.cost with cost_details, and is taken off the key's cap and the
// account's balance. Before answering, max_tokens (or the model's default
// maximum output) must fit in both, else 402 "You requested up to N tokens,
// but can only afford M" with metadata.limit_source openrouter_key_limit
// (the cap binds) or openrouter_credits (the balance binds; reason
// weight_exceeds_budget when M > 0); a negative balance refuses even free
// models. A spent free quota answers 429 "Rate limit exceeded:
// free-models-per-min." or "...free-models-per-day..." with X-RateLimit-Limit,
// -Remaining and -Reset (epoch milliseconds at the next minute or UTC
// midnight), echoed in error.metadata.headers. Keys of Options.Keys have an
// account each with ample credit. A last user message containing
// "sim:flagged" is refused by the moderation (403).
//
// Streams start with ": OPENROUTER PROCESSING" and repeat it now and then
// between events; the usage chunk, with its cost, comes just before
// [DONE] and repeats finish_reason. Replies carry "provider"; completions
// carry "system_fingerprint": null. A chat reply longer than max_tokens
// (padding included) stops at its max_tokens-th word, with finish_reason
// "length", and costs only what it kept; otherwise finish_reason is "stop".
// A Responses API reply cut at max_output_tokens is "incomplete" (reason
// max_output_tokens), its stream ending on response.incomplete.
//
// The models x/broken and x/missing... get 404 "model not found". Every
// reply carries HeaderBodySHA256, a header or (on streams) a trailer, and
// never shows the key, except /echo's copy of the request headers.
//
// Faults come per key, through its Profile (revoked, no credit, forbidden,
// rate-limited in bursts, failing now and then), and per request, through
// directives in a model named "sim/<directives>" or in the HeaderFault
// header:
//
//	status=<code>     answer <code> (400-599) with an OpenAI-style error
//	                  body {"error":{"message":"...","code":<code>}}
//	                  (429: OpenRouter's documented generic body, "Rate
//	                  limit exceeded" with metadata.error_type);
//	                  status=200 is the normal answer
//	reset=<form>      the reset hint on that error: retry-after, http-date,
//	                  ratelimit-reset or none (see ResetHint); default
//	                  retry-after for 429, none for other codes
//	after=<wait>      the wait the hint announces: seconds ("5") or a Go
//	                  duration ("1500ms"); default 1s
//	delay=<duration>  wait this long before the response headers, instead
//	                  of the latency of Options (slow first byte; <= 1h)
//	chunkdelay=<d>    gap between stream chunks, instead of ChunkDelay
//	chunks=<n>        content chunks in a stream (1-10000)
//	reset             (no value) break the connection with a TCP reset
//	                  after the first chunk: the first stream event, or the
//	                  first half of a body
//	truncate          declare the whole Content-Length, send the first
//	                  chunk as for reset, then close the connection: the
//	                  client reads an unexpected EOF
//	badjson           200 with a body that is not valid JSON (the reply cut
//	                  in half; on a stream, the first event is cut)
//	big=<size>        pad the reply's content so that the body is exactly
//	                  <size> bytes (or the minimum, if more): 8MB, 512KB,
//	                  1048576; K, M, G are binary; at most 256MB (on
//	                  /responses: <size> bytes of filler in the text)
//	noUsage           leave out the usage object (the usage chunk of a
//	                  stream)
//	moderation        403 with OpenRouter's moderation body (flagged input)
//	guardrail         403 with a guardrail body
//	provider429       429 passed on from the provider: "<model> is
//	                  temporarily rate-limited upstream...", with
//	                  metadata.provider_name, retry_after_seconds and a
//	                  Retry-After header (after=, default 1s), no X-RateLimit
//	inflight          402 of the in-flight budget: limit_source
//	                  openrouter_in_flight_budget, reason
//	                  in_flight_budget_exhausted, Retry-After (after=)
//	inband=<code>     200 that carries an error with <code> (400-599): the
//	                  body is {"error":{"code","message"}}; on a stream the
//	                  error chunk, with finish_reason "error", is the first
//	                  and only event (no [DONE])
//	errorafter=<n>    on a stream, the in-band error comes after n content
//	                  chunks (default code 502 unless inband= is given)
//	nodata            a stream that ends after its first comment, before any
//	                  data event
//	hold=<duration>   a stream that sends only processing comments (one every
//	                  250ms) for this long before its first data event
//	jsonstream        on /chat/completions, the plain JSON answer (inband=
//	                  included) whether or not a stream was asked,
//	                  labelled Content-Type text/event-stream, as some
//	                  OpenAI-compatible servers answer (not OpenRouter)
//
// The directive errors (status=, moderation, guardrail, provider429,
// inflight) are answered before the account's rules: they cost nothing and
// count against no quota. inband answers are admitted but cost nothing.
// On /embeddings and /responses these, status=, delay and the connection
// directives apply as on completions, from the model name as from the
// header; chunks, chunkdelay, inband,
// errorafter, nodata and hold apply to streamed responses too.
//
// Directives are separated by commas; names are case-insensitive; a later
// one overrides an earlier one, and the model's list is read after the
// header's. An unknown name or a bad value gets 400, so typos show. The key's
// Profile is applied first: a revoked key answers 401 whatever the request
// asks. On /models, /key, /credits and /echo, status, reset=, after, delay,
// reset, truncate and badjson apply. GET /key and /credits are not requests
// of the key in Stats (they count in KeyStats.BudgetReads) and meet no
// Profile fault but revocation, so that a budget poller leaves a test's
// rate-limit windows where they were.
package simulator
