package gateway

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/keygate/keygate/secret"
)

// TestAccountIDMaskedInEveryErrorBody (helper-77): a user_id in an error
// body comes back as its account's label whatever the body's length, and
// when upstream broke off after it.
func TestAccountIDMaskedInEveryErrorBody(t *testing.T) {
	const id = "user_2xACCOUNTIDMIDDLE77abcdef"
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	head := `{"error":{"message":"can only afford 10","code":402},"user_id":"` + id + `","pad":"`
	long := head + strings.Repeat("x", maxRedactWhole+10) + `"}`
	for name, body := range map[string]io.Reader{
		"long":   strings.NewReader(long),
		"cut":    iotest.HalfReader(strings.NewReader(`{"pad":"` + strings.Repeat("x", maxRedactWhole-12) + `","user_id":"` + id + `"}`)),
		"broken": io.MultiReader(strings.NewReader(head), iotest.ErrReader(errors.New("connection reset"))),
	} {
		t.Run(name, func(t *testing.T) {
			resp, _ := errorResponse(402, body)
			redactErrorBody(resp, r)
			got, _ := io.ReadAll(resp.Body)
			if strings.Contains(string(got), id) {
				t.Fatalf("the account id %s reached the client: %.120s", id, got)
			}
		})
	}
}
