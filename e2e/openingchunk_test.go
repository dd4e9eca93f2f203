package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// Chat and Messages streams as OpenRouter sends them: a chunk that only
// names the assistant's role (chat), or message_start (Anthropic's
// /messages), and only then output, or an error when the call fails before
// its first token.
const (
	chatRole    = "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
	chatHello   = "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n"
	chatDone    = "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	chatRevoked = "data: {\"error\":{\"code\":401,\"message\":\"User not found.\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n"
	msgStart    = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: ping\ndata: {\"type\":\"ping\"}\n\n"
	msgHello   = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
	msgStop    = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	msgRevoked = "event: error\ndata: {\"type\":\"error\",\"error\":{\"code\":401,\"message\":\"User not found.\"}}\n\n"
)

// TestOpeningChunkThenError: an error right after a stream's opening chunk
// (chat's role-only chunk, Anthropic's message_start) comes before any
// token: the call goes on to another key, the client gets one clean
// stream, and the key rests. After a token the stream is the client's as
// it came. Without the hold looking past the opening, the client got a 200
// stream that ended in the error, the key left in rotation.
func TestOpeningChunkThenError(t *testing.T) {
	for _, tt := range []struct {
		name, path, body string
		first, good      string // key 1's stream, key 2's
		want             string // what the client's answer holds
		calls            int
		key1State        string
	}{
		{"chat: role chunk, then an error", "/v1/chat/completions", `{"model":"m","stream":true}`,
			chatRole + chatRevoked, chatRole + chatHello + chatDone, `"content":"Hello"`, 2, "open"},
		{"chat: role chunk, a token, then an error", "/v1/chat/completions", `{"model":"m","stream":true}`,
			chatRole + chatHello + chatRevoked, chatRole + chatHello + chatDone, `"finish_reason":"error"`, 1, "open"},
		{"chat: role chunk and output", "/v1/chat/completions", `{"model":"m","stream":true}`,
			chatRole + chatHello + chatDone, "", `[DONE]`, 1, "closed"},
		{"messages: message_start, then an error", "/v1/messages", `{"model":"m","stream":true,"max_tokens":8}`,
			msgStart + msgRevoked, msgStart + msgHello + msgStop, `"text":"Hello"`, 2, "open"},
		{"messages: output", "/v1/messages", `{"model":"m","stream":true,"max_tokens":8}`,
			msgStart + msgHello + msgStop, "", `message_stop`, 1, "closed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys := testKeys(2)
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				if s.Key == keys[0] {
					ptFlushed(w, tt.first)
					return
				}
				ptFlushed(w, tt.good)
			})
			g := hdStart(t, up.URL, keys, newClock(), "KEY_ROTATION=round-robin")
			res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+tt.path, tt.body))
			if res.Err != nil || res.Status != 200 || !strings.Contains(string(res.Body), tt.want) || seen.len() != tt.calls {
				t.Fatalf("%d %v %s after %d calls, want 200 holding %s after %d", res.Status, res.Err, res.Body, seen.len(), tt.want, tt.calls)
			}
			if tt.calls == 2 && string(res.Body) != tt.good {
				t.Fatalf("client got %q, want key 2's stream alone", res.Body)
			}
			if got := hdKeyStates(t, g)[0]; got != tt.key1State {
				t.Fatalf("key 1 %s after its stream, want %s", got, tt.key1State)
			}
		})
	}
}
