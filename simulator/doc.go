// Package simulator is a simulated OpenAI-compatible upstream, shaped like
// OpenRouter, for running keygate offline: `keygate -demo`, the end-to-end
// and chaos tests, and the load benchmarks point OPENROUTER_BASE_URL at it.
//
// Endpoints, under PathPrefix ("/api/v1"), each needing
// "Authorization: Bearer <key>" with a key of Options.Keys (else 401):
//
//	POST /chat/completions  a reply naming the model and echoing the last
//	                        user message; "stream": true gives server-sent
//	                        events, flushed chunk by chunk
//	GET  /models            a small model list
//	any  /echo, /echo/...   the request itself as JSON (method, URI, query,
//	                        headers, body), to see what reached the upstream
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
//	                  body {"error":{"message":"...","code":<code>}};
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
//	                  1048576; K, M, G are binary; at most 256MB
//	noUsage           leave out the usage object (the usage chunk of a
//	                  stream)
//
// Directives are separated by commas; names are case-insensitive; a later
// one overrides an earlier one, and the model's list is read after the
// header's. An unknown name or a bad value gets 400, so typos show. The key's
// Profile is applied first: a revoked key answers 401 whatever the request
// asks. On /models and /echo, status, reset=, after, delay, reset, truncate
// and badjson apply.
package simulator
