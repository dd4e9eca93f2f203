package e2e

import (
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestOpenAISDKStreamFailover: the official Go SDK reads a stream that
// failed over (the first key's stream began with a key-limit error event)
// as one clean stream, and raises its usual error for a stream whose first
// event is a request error.
func TestOpenAISDKStreamFailover(t *testing.T) {
	keys := testKeys(3)
	up, log, _ := sfUpstream(t, keys, map[int][]string{
		0: {sfProcessing, sfKeyLimit},
		2: {sfProcessing, sfBadRequest},
	}, newGate(t))
	gw := startGateway(t, up.URL, keys, "KEY_ROTATION=least-busy")
	client := openai.NewClient(option.WithBaseURL(gw.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}

	var resp *http.Response
	stream := client.Chat.Completions.NewStreaming(t.Context(), params, option.WithResponseInto(&resp))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatal("a chunk does not continue the completion")
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	stream.Close()
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "Hello" || acc.Usage.TotalTokens != 5 {
		t.Fatalf("accumulated %+v usage %+v, want Hello with its usage", acc.Choices, acc.Usage)
	}
	if got := resp.Header.Get("X-Keygate-Key"); got != "2" || log.len() != 2 {
		t.Fatalf("answered by key %s after %d calls, want key 2 after 2", got, log.len())
	}

	// Key 3 next, whose stream opens with a request error.
	stream = client.Chat.Completions.NewStreaming(t.Context(), params)
	for stream.Next() {
		t.Fatalf("chunk %+v from a failed stream", stream.Current())
	}
	var apiErr *openai.Error
	if err := stream.Err(); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Message != "context too long" {
		t.Fatalf("stream error %v, want the SDK's 400 error with upstream's message", err)
	}
	stream.Close()
}
